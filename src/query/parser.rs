//! The text front end: a hand-written tokenizer and recursive-descent parser.
//!
//! Grammar (keywords case-insensitive; NOT binds tighter than AND, AND than OR):
//! ```text
//! query     := or EOF
//! or        := and ("OR" and)*
//! and       := not ("AND" not)*
//! not       := "NOT" not | primary
//! primary   := "(" or ")" | "*"
//!            | "segment:" value
//!            | field ":" value                       -- field = value
//!            | field cmp literal
//!            | field "IN" "(" literal ("," literal)* ")"
//!            | field "BETWEEN" literal "AND" literal
//!            | field "WITHIN" duration
//!            | field "EXISTS"
//! cmp       := "=" | "!=" | "<" | "<=" | ">" | ">="
//! literal   := string | integer | decimal | date | "true" | "false"
//! duration  := integer ("d" | "w")
//! ```

use crate::error::{QueryError, QueryErrorKind, quote};
use crate::schema::days_from_civil;

use super::{CmpOp, Literal, MAX_IN_VALUES, MAX_QUERY_BYTES, MAX_QUERY_DEPTH, Predicate, Query};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Comma,
    Star,
    Colon,
    Cmp(CmpOp),
    /// A bare word: identifier, keyword, number, date, duration or bare value.
    Word(String),
    Str(String),
    Eof,
}

struct Lexer<'a> {
    text: &'a str,
    pos: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::LParen => "\"(\"".into(),
        Tok::RParen => "\")\"".into(),
        Tok::Comma => "\",\"".into(),
        Tok::Star => "\"*\"".into(),
        Tok::Colon => "\":\"".into(),
        Tok::Cmp(_) => "a comparison operator".into(),
        Tok::Word(w) => quote(w),
        Tok::Str(s) => format!("string {}", quote(s)),
        Tok::Eof => "end of input".into(),
    }
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, '(' | ')' | ',' | '"' | ':' | '=' | '!' | '<' | '>' | '*')
}

impl<'a> Lexer<'a> {
    fn err(&self, offset: usize, expected: &str, found: String) -> QueryError {
        QueryError {
            offset,
            kind: QueryErrorKind::Expected {
                expected: expected.into(),
                found,
            },
        }
    }

    /// The next token and its byte offset.
    fn next(&mut self) -> Result<(Tok, usize), QueryError> {
        let rest = &self.text[self.pos..];
        let trimmed = rest.trim_start();
        self.pos += rest.len() - trimmed.len();
        let start = self.pos;
        let Some(c) = trimmed.chars().next() else {
            return Ok((Tok::Eof, start));
        };
        let single = |tok: Tok, len: usize, lexer: &mut Lexer<'_>| {
            lexer.pos += len;
            Ok((tok, start))
        };
        match c {
            '(' => single(Tok::LParen, 1, self),
            ')' => single(Tok::RParen, 1, self),
            ',' => single(Tok::Comma, 1, self),
            '*' => single(Tok::Star, 1, self),
            ':' => single(Tok::Colon, 1, self),
            '=' => single(Tok::Cmp(CmpOp::Eq), 1, self),
            '!' if trimmed.starts_with("!=") => single(Tok::Cmp(CmpOp::Ne), 2, self),
            '<' if trimmed.starts_with("<=") => single(Tok::Cmp(CmpOp::Le), 2, self),
            '<' => single(Tok::Cmp(CmpOp::Lt), 1, self),
            '>' if trimmed.starts_with(">=") => single(Tok::Cmp(CmpOp::Ge), 2, self),
            '>' => single(Tok::Cmp(CmpOp::Gt), 1, self),
            '"' => {
                let mut out = String::new();
                let mut chars = trimmed.char_indices().skip(1);
                while let Some((i, ch)) = chars.next() {
                    match ch {
                        '"' => {
                            self.pos += i + 1;
                            return Ok((Tok::Str(out), start));
                        }
                        '\\' => match chars.next() {
                            Some((_, esc @ ('"' | '\\'))) => out.push(esc),
                            Some((j, other)) => {
                                return Err(self.err(
                                    start + j,
                                    "an escape \\\" or \\\\",
                                    format!("\\{other}"),
                                ));
                            }
                            None => break,
                        },
                        _ => out.push(ch),
                    }
                }
                Err(self.err(self.text.len(), "a closing quote", "end of input".into()))
            }
            _ if is_word_char(c) => {
                let len = trimmed
                    .find(|ch: char| !is_word_char(ch))
                    .unwrap_or(trimmed.len());
                self.pos += len;
                Ok((Tok::Word(trimmed[..len].to_owned()), start))
            }
            other => Err(self.err(start, "a query term", format!("{other:?}"))),
        }
    }
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Tok,
    at: usize,
    depth: usize,
}

fn keyword(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

const KEYWORDS: [&str; 8] = [
    "and", "or", "not", "in", "between", "within", "exists", "segment",
];

pub(super) fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError {
            offset: MAX_QUERY_BYTES,
            kind: QueryErrorKind::TooLong {
                limit: MAX_QUERY_BYTES,
            },
        });
    }
    let mut lexer = Lexer { text, pos: 0 };
    let (tok, at) = lexer.next()?;
    let mut parser = Parser {
        lexer,
        tok,
        at,
        depth: 0,
    };
    let query = parser.or()?;
    if parser.tok != Tok::Eof {
        return Err(parser.expected("AND, OR or end of input"));
    }
    Ok(query)
}

impl Parser<'_> {
    fn bump(&mut self) -> Result<(Tok, usize), QueryError> {
        let (next, at) = self.lexer.next()?;
        let tok = std::mem::replace(&mut self.tok, next);
        let old_at = std::mem::replace(&mut self.at, at);
        Ok((tok, old_at))
    }

    fn expected(&self, what: &str) -> QueryError {
        QueryError {
            offset: self.at,
            kind: QueryErrorKind::Expected {
                expected: what.into(),
                found: describe(&self.tok),
            },
        }
    }

    fn descend(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_QUERY_DEPTH {
            return Err(QueryError {
                offset: self.at,
                kind: QueryErrorKind::TooDeep {
                    limit: MAX_QUERY_DEPTH,
                },
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.and()?];
        while keyword(&self.tok, "or") {
            self.bump()?;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Query::Or(items)
        })
    }

    fn and(&mut self) -> Result<Query, QueryError> {
        let mut items = vec![self.not()?];
        while keyword(&self.tok, "and") {
            self.bump()?;
            items.push(self.not()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Query::And(items)
        })
    }

    fn not(&mut self) -> Result<Query, QueryError> {
        if keyword(&self.tok, "not") {
            self.bump()?;
            self.descend()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Query::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Query, QueryError> {
        match self.tok.clone() {
            Tok::LParen => {
                self.bump()?;
                self.descend()?;
                let inner = self.or()?;
                self.depth -= 1;
                if self.tok != Tok::RParen {
                    return Err(self.expected("\")\""));
                }
                self.bump()?;
                Ok(inner)
            }
            Tok::Star => {
                self.bump()?;
                Ok(Query::All)
            }
            Tok::Word(word) if !KEYWORDS[..7].iter().any(|k| word.eq_ignore_ascii_case(k)) => {
                let (_, offset) = self.bump()?;
                self.after_field(word, offset)
            }
            _ => Err(self.expected("a condition such as tag:vip or region = \"x\"")),
        }
    }

    fn after_field(&mut self, field: String, offset: usize) -> Result<Query, QueryError> {
        let valid_name = field
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !field.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            return Err(QueryError {
                offset,
                kind: QueryErrorKind::Expected {
                    expected: "a field name".into(),
                    found: quote(&field),
                },
            });
        }
        let field_pred = |predicate| Query::Field {
            field: field.clone(),
            predicate,
            offset,
        };
        match self.tok.clone() {
            Tok::Colon => {
                self.bump()?;
                let value = match self.bump()? {
                    (Tok::Word(w), _) => w,
                    (Tok::Str(s), at) if s.is_empty() => {
                        return Err(QueryError {
                            offset: at,
                            kind: QueryErrorKind::Expected {
                                expected: "a non-empty value after \":\"".into(),
                                found: "\"\"".into(),
                            },
                        });
                    }
                    (Tok::Str(s), _) => s,
                    (other, at) => {
                        return Err(QueryError {
                            offset: at,
                            kind: QueryErrorKind::Expected {
                                expected: "a value after \":\"".into(),
                                found: describe(&other),
                            },
                        });
                    }
                };
                if field.eq_ignore_ascii_case("segment") {
                    // Saved segments are named by `check_name`'s rule; a name outside it
                    // could never resolve, and would not survive the canonical text.
                    if crate::schema::check_stage_name(&value).is_err() {
                        return Err(QueryError {
                            offset,
                            kind: QueryErrorKind::Expected {
                                expected: "a segment name of 1 to 64 bytes of [a-z0-9_]".into(),
                                found: quote(&value),
                            },
                        });
                    }
                    return Ok(Query::Segment {
                        name: value,
                        offset,
                    });
                }
                Ok(field_pred(Predicate::Cmp(CmpOp::Eq, Literal::Str(value))))
            }
            Tok::Cmp(op) => {
                self.bump()?;
                let value = self.literal()?;
                Ok(field_pred(Predicate::Cmp(op, value)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => {
                self.bump()?;
                if self.tok != Tok::LParen {
                    return Err(self.expected("\"(\" after IN"));
                }
                self.bump()?;
                let mut values = vec![self.literal()?];
                while self.tok == Tok::Comma {
                    self.bump()?;
                    if values.len() >= MAX_IN_VALUES {
                        return Err(self.expected(&format!("at most {MAX_IN_VALUES} values in IN")));
                    }
                    values.push(self.literal()?);
                }
                if self.tok != Tok::RParen {
                    return Err(self.expected("\",\" or \")\""));
                }
                self.bump()?;
                Ok(field_pred(Predicate::In(values)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("between") => {
                self.bump()?;
                let low = self.literal()?;
                if !keyword(&self.tok, "and") {
                    return Err(self.expected("AND in BETWEEN … AND …"));
                }
                self.bump()?;
                let high = self.literal()?;
                Ok(field_pred(Predicate::Between(low, high)))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("within") => {
                self.bump()?;
                let days = self.duration()?;
                Ok(field_pred(Predicate::Within { days }))
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("exists") => {
                self.bump()?;
                Ok(field_pred(Predicate::Exists))
            }
            _ => Err(self.expected("\":\", a comparison, IN, BETWEEN, WITHIN or EXISTS")),
        }
    }

    fn duration(&mut self) -> Result<u32, QueryError> {
        let Tok::Word(word) = self.tok.clone() else {
            return Err(self.expected("a duration such as 90d or 12w"));
        };
        let mut chars = word.chars();
        let unit = chars.next_back();
        let digits = chars.as_str();
        let per = match unit {
            Some('d' | 'D') => 1u32,
            Some('w' | 'W') => 7,
            _ => return Err(self.expected("a duration such as 90d or 12w")),
        };
        let days = digits
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(per))
            .filter(|d| *d <= 1_000_000)
            .ok_or_else(|| self.expected("a duration of at most 1000000 days"))?;
        self.bump()?;
        Ok(days)
    }

    fn literal(&mut self) -> Result<Literal, QueryError> {
        let literal = match &self.tok {
            Tok::Str(s) if s.is_empty() => {
                return Err(self.expected("a non-empty string (an empty value matches nothing)"));
            }
            Tok::Str(s) => Literal::Str(s.clone()),
            Tok::Word(w) if w.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Word(w) if w.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Word(w) => match parse_number_or_date(w) {
                Some(literal) => literal,
                None => {
                    return Err(self.expected(
                        "a value: \"string\", number, date (2026-01-31), true or false",
                    ));
                }
            },
            _ => {
                return Err(
                    self.expected("a value: \"string\", number, date (2026-01-31), true or false")
                );
            }
        };
        self.bump()?;
        Ok(literal)
    }
}

fn parse_number_or_date(word: &str) -> Option<Literal> {
    let bytes = word.as_bytes();
    if bytes.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-' {
        let year = word[0..4].parse().ok()?;
        let month = word[5..7].parse().ok()?;
        let day = word[8..10].parse().ok()?;
        return days_from_civil(year, month, day).map(Literal::Date);
    }
    if let Ok(int) = word.parse::<i64>() {
        return Some(Literal::Int(int));
    }
    // Decimal with at most two places → minor units.
    let (sign, digits) = match word.strip_prefix('-') {
        Some(rest) => (-1i128, rest),
        None => (1, word),
    };
    let (whole, frac) = digits.split_once('.')?;
    if whole.is_empty()
        || frac.is_empty()
        || frac.len() > 2
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i128 = whole.parse().ok()?;
    let frac_value: i128 = frac.parse().ok()?;
    let frac_minor = if frac.len() == 1 {
        frac_value * 10
    } else {
        frac_value
    };
    let minor = whole.checked_mul(100)?.checked_add(frac_minor)?;
    i64::try_from(sign * minor).ok().map(Literal::Decimal)
}
