//! Quoting offending input in error messages. A leaf module.

/// The most bytes of an offending input an error message quotes.
pub(crate) const MAX_QUOTED_BYTES: usize = 80;

/// An input quoted for an error message: Rust string syntax, cut after
/// [`MAX_QUOTED_BYTES`] bytes (at a character boundary) with the full length named, so
/// that an oversized input is not echoed whole.
pub(crate) fn quote(input: &str) -> String {
    if input.len() <= MAX_QUOTED_BYTES {
        return format!("{input:?}");
    }
    let mut end = MAX_QUOTED_BYTES;
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &input[..end], input.len())
}
