//! The server's JSON shapes for analytics and lead assignment: the request bodies of
//! `/analytics/*` and `/assignment`, and the conversions of the engine's results.
//!
//! The conventions are those of the records: money is sent back as an exact decimal
//! string, times are accepted as `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SSZ` or seconds since
//! the Unix epoch and sent back as `YYYY-MM-DDTHH:MM:SSZ`. Durations (time in stage,
//! cycle time) are seconds; rates are fractions in `[0, 1]`; either is `null` when there
//! is nothing to measure. Beside each, for people, the same figure in days
//! (`*_days`, one decimal) or as a percentage (`*_percent`, one decimal).

use std::collections::BTreeSet;

use crmdb::analytics::{
    CategorySales, Funnel, FunnelRequest, FunnelStage, OwnerSort, OwnerStats, ProductSales,
    RfmState,
};
use crmdb::{
    Assignment, AssignmentRule, DEFAULT_PIPELINE, Error, Machine, OwnerId, Query, Result, Stage,
    Timestamp,
};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::fields::{TimeIn, money_json, parse_time};

/// A time argument of an analytics request.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `field` when the text is not a date or time.
pub fn time_arg(field: &str, value: TimeIn) -> Result<Timestamp> {
    match value {
        TimeIn::Seconds(seconds) => Ok(Timestamp(seconds)),
        TimeIn::Text(text) => parse_time(&text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{field:?} must be YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or epoch seconds, not {text:?}"
            ))
        }),
    }
}

/// A window `[from, to)`; empty or reversed windows are refused.
fn window(from: TimeIn, to: TimeIn) -> Result<(Timestamp, Timestamp)> {
    let from = time_arg("from", from)?;
    let to = time_arg("to", to)?;
    if from >= to {
        return Err(Error::InvalidArgument(format!(
            "\"from\" ({from}) must be before \"to\" ({to})"
        )));
    }
    Ok((from, to))
}

/// Seconds as days, to one decimal.
fn days(seconds: Option<f64>) -> Json {
    json!(seconds.map(|s| (s / 86_400.0 * 10.0).round() / 10.0))
}

/// A fraction as a percentage, to one decimal.
fn percent(rate: Option<f64>) -> Json {
    json!(rate.map(|r| (r * 1_000.0).round() / 10.0))
}

fn default_pipeline() -> String {
    DEFAULT_PIPELINE.into()
}

/// `POST /analytics/funnel`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelIn {
    /// The deal pipeline; `default` when absent.
    #[serde(default = "default_pipeline")]
    pipeline: String,
    from: TimeIn,
    to: TimeIn,
    /// A deal query restricting the deals, e.g. `owner = 3`.
    #[serde(default)]
    segment: Option<String>,
}

impl FunnelIn {
    /// The window, checked; kept apart so that bad dates are refused before any work.
    pub fn window(self) -> Result<FunnelWindow> {
        let (from, to) = window(self.from, self.to)?;
        Ok(FunnelWindow {
            pipeline: self.pipeline,
            from,
            to,
            segment: self.segment,
        })
    }
}

/// A funnel request whose window is checked and whose segment is not yet parsed.
#[derive(Debug)]
pub struct FunnelWindow {
    pipeline: String,
    from: Timestamp,
    to: Timestamp,
    segment: Option<String>,
}

impl FunnelWindow {
    /// The engine's request.
    ///
    /// # Errors
    /// [`Error::Query`] when the segment does not parse.
    pub fn into_request(self) -> Result<FunnelRequest> {
        Ok(FunnelRequest {
            pipeline: self.pipeline,
            from: self.from,
            to: self.to,
            segment: self.segment.as_deref().map(Query::parse).transpose()?,
        })
    }
}

fn stage_json(stage: &FunnelStage) -> Json {
    json!({
        "stage": stage.stage.as_str(),
        "entered": stage.entered,
        "converted": stage.converted,
        "conversion_rate": stage.conversion_rate,
        "conversion_percent": percent(stage.conversion_rate),
        "median_time_in_stage": stage.median_time_in_stage,
        "median_days_in_stage": days(stage.median_time_in_stage.map(|s| s as f64)),
        "mean_time_in_stage": stage.mean_time_in_stage,
        "mean_days_in_stage": days(stage.mean_time_in_stage),
    })
}

/// The response of `POST /analytics/funnel`.
pub fn funnel_json(request: &FunnelRequest, funnel: &Funnel) -> Json {
    json!({
        "pipeline": request.pipeline,
        "from": request.from.to_string(),
        "to": request.to.to_string(),
        "segment": request.segment.as_ref().map(Query::to_string),
        "stages": funnel.stages.iter().map(stage_json).collect::<Vec<_>>(),
        "deals": funnel.deals,
        "won": funnel.won,
        "lost": funnel.lost,
        "win_rate": funnel.win_rate,
        "win_percent": percent(funnel.win_rate),
        "median_cycle_time": funnel.median_cycle_time,
        "median_cycle_days": days(funnel.median_cycle_time.map(|s| s as f64)),
        "mean_cycle_time": funnel.mean_cycle_time,
        "mean_cycle_days": days(funnel.mean_cycle_time),
    })
}

/// How an owner ranking is ordered, best first.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortIn {
    /// Won amount, largest first.
    #[default]
    WonAmount,
    /// Won deals, most first.
    WonCount,
    /// Win rate of closed deals, highest first.
    ConversionRate,
    /// Probability-weighted open pipeline, largest first.
    WeightedPipeline,
    /// Activities, most first.
    ActivityCount,
    /// Median cycle time, shortest first.
    CycleTime,
}

impl SortIn {
    fn name(self) -> &'static str {
        match self {
            SortIn::WonAmount => "won_amount",
            SortIn::WonCount => "won_count",
            SortIn::ConversionRate => "conversion_rate",
            SortIn::WeightedPipeline => "weighted_pipeline",
            SortIn::ActivityCount => "activity_count",
            SortIn::CycleTime => "cycle_time",
        }
    }

    fn engine(self) -> OwnerSort {
        match self {
            SortIn::WonAmount => OwnerSort::WonAmount,
            SortIn::WonCount => OwnerSort::WonCount,
            SortIn::ConversionRate => OwnerSort::ConversionRate,
            SortIn::WeightedPipeline => OwnerSort::WeightedPipeline,
            SortIn::ActivityCount => OwnerSort::ActivityCount,
            SortIn::CycleTime => OwnerSort::CycleTime,
        }
    }
}

/// `POST /analytics/owners`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnersIn {
    from: TimeIn,
    to: TimeIn,
    /// `won_amount` when absent.
    #[serde(default)]
    sort: SortIn,
}

/// A checked owner-ranking request.
#[derive(Debug, Clone, Copy)]
pub struct OwnersRequest {
    /// Start of the window (inclusive).
    pub from: Timestamp,
    /// End of the window (exclusive).
    pub to: Timestamp,
    sort: SortIn,
}

impl OwnersRequest {
    /// The engine's ordering.
    pub fn sort(&self) -> OwnerSort {
        self.sort.engine()
    }
}

impl OwnersIn {
    /// Checks the window.
    pub fn check(self) -> Result<OwnersRequest> {
        let (from, to) = window(self.from, self.to)?;
        Ok(OwnersRequest {
            from,
            to,
            sort: self.sort,
        })
    }
}

fn owner_json(owner: &OwnerStats) -> Json {
    json!({
        "owner": owner.owner.get(),
        "name": owner.name,
        "won_amount": money_json(owner.won_amount),
        "won_count": owner.won_count,
        "closed_count": owner.closed_count,
        "conversion_rate": owner.conversion_rate,
        "conversion_percent": percent(owner.conversion_rate),
        "weighted_pipeline": money_json(owner.weighted_pipeline),
        "activity_count": owner.activity_count,
        "median_cycle_time": owner.median_cycle_time,
        "median_cycle_days": days(owner.median_cycle_time.map(|s| s as f64)),
    })
}

/// The response of `POST /analytics/owners`.
pub fn owners_json(request: &OwnersRequest, owners: &[OwnerStats]) -> Json {
    json!({
        "from": request.from.to_string(),
        "to": request.to.to_string(),
        "sort": request.sort.name(),
        "owners": owners.iter().map(owner_json).collect::<Vec<_>>(),
    })
}

/// `POST /analytics/products`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsIn {
    from: TimeIn,
    to: TimeIn,
}

impl ProductsIn {
    /// The checked window `[from, to)`.
    pub fn window(self) -> Result<(Timestamp, Timestamp)> {
        window(self.from, self.to)
    }
}

/// The response of `POST /analytics/products`.
pub fn products_json(
    (from, to): (Timestamp, Timestamp),
    products: &[ProductSales],
    categories: &[CategorySales],
) -> Json {
    json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "products": products.iter().map(|p| json!({
            "product": p.product.get(),
            "sku": p.sku,
            "category": p.category,
            "revenue": money_json(p.revenue),
            "units": p.units,
            "orders": p.orders,
        })).collect::<Vec<_>>(),
        "categories": categories.iter().map(|c| json!({
            "category": c.category,
            "revenue": money_json(c.revenue),
            "units": c.units,
            "orders": c.orders,
        })).collect::<Vec<_>>(),
    })
}

/// `POST /analytics/rfm/refresh`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RfmRefreshIn {
    /// The `now` scores are computed as of; the database clock when absent.
    #[serde(default)]
    now: Option<TimeIn>,
}

impl RfmRefreshIn {
    /// The checked `now`, if given.
    pub fn now(self) -> Result<Option<Timestamp>> {
        self.now.map(|now| time_arg("now", now)).transpose()
    }
}

/// The response of the RFM endpoints.
pub fn rfm_json(state: &RfmState) -> Json {
    json!({
        "refreshed_at": state.refreshed_at.to_string(),
        "customers": state.customers,
        "top20": state.top20,
        "top20_revenue_share": state.top20_revenue_share,
        "top20_revenue_percent": percent(Some(state.top20_revenue_share)),
    })
}

/// One assignment rule: `{"round_robin": {"name", "team"}}`,
/// `{"by_region": {"name"}}` or `{"capacity_limited": {"name", "team"?, "period_days"}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleIn {
    /// Round robin among a team's live owners.
    RoundRobin {
        /// Recorded on the lead as the rule that assigned it.
        name: String,
        /// The team.
        team: String,
    },
    /// Round robin among the live owners of the lead's region.
    ByRegion {
        /// Recorded on the lead.
        name: String,
    },
    /// The owner with the fewest recent open leads, below their capacity.
    CapacityLimited {
        /// Recorded on the lead.
        name: String,
        /// Restrict to a team.
        #[serde(default)]
        team: Option<String>,
        /// The period capacity counts over.
        period_days: u32,
    },
}

impl From<RuleIn> for AssignmentRule {
    fn from(rule: RuleIn) -> AssignmentRule {
        match rule {
            RuleIn::RoundRobin { name, team } => AssignmentRule::RoundRobin { name, team },
            RuleIn::ByRegion { name } => AssignmentRule::ByRegion { name },
            RuleIn::CapacityLimited {
                name,
                team,
                period_days,
            } => AssignmentRule::CapacityLimited {
                name,
                team,
                period_days,
            },
        }
    }
}

fn default_lead_stages() -> Vec<String> {
    Assignment::default()
        .lead_stages
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect()
}

/// `PUT /assignment`: the whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignmentIn {
    /// Rules, tried in order.
    rules: Vec<RuleIn>,
    /// Owner ids never assigned leads.
    #[serde(default)]
    excluded: BTreeSet<u32>,
    /// Contact stages that count as open leads; `prospect` and `responder` when absent.
    #[serde(default = "default_lead_stages")]
    lead_stages: Vec<String>,
}

impl AssignmentIn {
    /// The engine's configuration, its lead stages checked against the contact lifecycle.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a lead stage the lifecycle does not have.
    pub fn into_assignment(self, contact_lifecycle: &Machine) -> Result<Assignment> {
        let mut lead_stages = Vec::with_capacity(self.lead_stages.len());
        for name in self.lead_stages {
            let stage = Stage::new(name);
            if contact_lifecycle.stage(&stage).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "lead stage {:?} is not a contact stage",
                    stage.as_str()
                )));
            }
            if !lead_stages.contains(&stage) {
                lead_stages.push(stage);
            }
        }
        Ok(Assignment {
            rules: self.rules.into_iter().map(AssignmentRule::from).collect(),
            excluded: self.excluded.into_iter().map(OwnerId::new).collect(),
            lead_stages,
        })
    }
}

fn rule_json(rule: &AssignmentRule) -> Json {
    match rule {
        AssignmentRule::RoundRobin { name, team } => {
            json!({ "round_robin": { "name": name, "team": team } })
        }
        AssignmentRule::ByRegion { name } => json!({ "by_region": { "name": name } }),
        AssignmentRule::CapacityLimited {
            name,
            team,
            period_days,
        } => json!({
            "capacity_limited": { "name": name, "team": team, "period_days": period_days }
        }),
    }
}

/// The response of the assignment endpoints; accepted back by `PUT /assignment`.
pub fn assignment_json(assignment: &Assignment) -> Json {
    json!({
        "rules": assignment.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "excluded": assignment.excluded.iter().map(|o| o.get()).collect::<Vec<_>>(),
        "lead_stages": assignment.lead_stages.iter().map(Stage::as_str).collect::<Vec<_>>(),
    })
}
