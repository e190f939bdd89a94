//! CRM analytics from the seed documents: the sales funnel and time in stage from the
//! stage history, owner ranking, product and category sales, RFM scores and value tiers.
//!
//! Read-side functions take any [`Snapshot`]; [`WriteTransaction::refresh_rfm`] stores
//! RFM scores and value tiers as indexes so segments can use them
//! (`rfm.recency >= 4`, `tier:top20`, `band:1`).
//!
//! **Staleness rule**: RFM scores, tiers and bands describe the database as of the last
//! `refresh_rfm` (its `now` and its records). Orders written after it do not move
//! anyone's scores until the next refresh; contacts who became customers since have no
//! scores; deleted contacts drop out of every result as always. [`rfm_state`] says when
//! the last refresh ran.

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use crate::codec;
use crate::error::{Error, Result};
use crate::index::{self, Bsi};
use crate::lifecycle::{ChangeKind, Machine};
use crate::query::{Literal, Query};
use crate::schema::Stage;
use crate::schema::{
    Deal, DealId, EntityKind, Money, Order, OrderStatus, Owner, OwnerId, Product, ProductId,
    Timestamp,
};
use crate::storage::meta;
use crate::storage::source::Source as _;
use crate::txn::{DerivedIndexes, Snapshot, WriteTransaction};

fn median(values: &mut [i64]) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    })
}

fn mean(values: &[i64]) -> Option<f64> {
    (!values.is_empty())
        .then(|| values.iter().map(|v| *v as f64).sum::<f64>() / values.len() as f64)
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Which deals a funnel covers.
#[derive(Debug, Clone)]
pub struct FunnelRequest {
    /// The pipeline.
    pub pipeline: String,
    /// Start of the window (inclusive).
    pub from: Timestamp,
    /// End of the window (exclusive).
    pub to: Timestamp,
    /// Only deals matching this deal query (all live deals when `None`).
    pub segment: Option<Query>,
}

/// One stage of a funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelStage {
    /// The stage.
    pub stage: Stage,
    /// Entries into the stage inside the window.
    pub entered: u64,
    /// Of those, how many next moved forward to a later stage that is not a loss.
    pub converted: u64,
    /// `converted / entered`.
    pub conversion_rate: Option<f64>,
    /// Median seconds spent in the stage by entries that have left it.
    pub median_time_in_stage: Option<i64>,
    /// Mean seconds in the stage, likewise.
    pub mean_time_in_stage: Option<f64>,
}

/// A pipeline funnel.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    /// Stages in pipeline order.
    pub stages: Vec<FunnelStage>,
    /// Deals considered.
    pub deals: u64,
    /// Deals that entered a won stage (terminal, 100%) inside the window.
    pub won: u64,
    /// Deals that entered a lost stage (terminal, 0%) inside the window.
    pub lost: u64,
    /// `won / (won + lost)`.
    pub win_rate: Option<f64>,
    /// Median seconds from creation to winning, for deals won inside the window.
    pub median_cycle_time: Option<i64>,
    /// Mean cycle time in seconds.
    pub mean_cycle_time: Option<f64>,
}

fn is_won(machine: &Machine, stage: &Stage) -> bool {
    machine
        .stage(stage)
        .is_some_and(|s| s.terminal && s.probability == Some(100))
}

fn is_lost(machine: &Machine, stage: &Stage) -> bool {
    machine
        .stage(stage)
        .is_some_and(|s| s.terminal && s.probability == Some(0))
}

fn deals_in<S: Snapshot + ?Sized>(
    snap: &S,
    pipeline: Option<&str>,
    segment: Option<&Query>,
) -> Result<RoaringBitmap> {
    let mut query = segment.cloned().unwrap_or(Query::All);
    if let Some(pipeline) = pipeline {
        query = query.and(Query::field("pipeline").eq(pipeline));
    }
    snap.ids(EntityKind::Deal, &query)
}

/// The funnel of a pipeline over a window, from the stage history. Stages skipped by a
/// deal count as not entered.
///
/// # Errors
/// An unknown pipeline, a segment that does not bind, or a storage failure.
pub fn funnel<S: Snapshot + ?Sized>(snap: &S, request: &FunnelRequest) -> Result<Funnel> {
    let machines = snap.machines()?;
    let machine = machines.pipelines.get(&request.pipeline).ok_or_else(|| {
        Error::InvalidArgument(format!("unknown pipeline {:?}", request.pipeline))
    })?;
    let deals = deals_in(snap, Some(&request.pipeline), request.segment.as_ref())?;
    let in_window = |t: Timestamp| t >= request.from && t < request.to;
    let mut entered: HashMap<&Stage, u64> = HashMap::new();
    let mut converted: HashMap<&Stage, u64> = HashMap::new();
    let mut times: HashMap<&Stage, Vec<i64>> = HashMap::new();
    let (mut won, mut lost) = (0u64, 0u64);
    let mut cycles = Vec::new();
    for row in &deals {
        let history = snap.history(DealId::new(row))?;
        let created = history.first().map(|c| c.at);
        for (i, change) in history.iter().enumerate() {
            let Some(def) = machine.stages.iter().find(|s| s.name == change.to) else {
                continue;
            };
            if !in_window(change.at) || change.kind == ChangeKind::Remap {
                continue;
            }
            *entered.entry(&def.name).or_default() += 1;
            if let Some(next) = history.get(i + 1) {
                times
                    .entry(&def.name)
                    .or_default()
                    .push(next.at.0 - change.at.0);
                let forward = machine.position(&next.to) > machine.position(&change.to);
                if forward && !is_lost(machine, &next.to) {
                    *converted.entry(&def.name).or_default() += 1;
                }
            }
            if is_won(machine, &change.to) {
                won += 1;
                if let Some(created) = created {
                    cycles.push(change.at.0 - created.0);
                }
            } else if is_lost(machine, &change.to) {
                lost += 1;
            }
        }
    }
    let stages = machine
        .stages
        .iter()
        .map(|def| {
            let e = entered.get(&def.name).copied().unwrap_or(0);
            let c = converted.get(&def.name).copied().unwrap_or(0);
            let mut t = times.remove(&def.name).unwrap_or_default();
            FunnelStage {
                stage: def.name.clone(),
                entered: e,
                converted: c,
                conversion_rate: ratio(c, e),
                mean_time_in_stage: mean(&t),
                median_time_in_stage: median(&mut t),
            }
        })
        .collect();
    Ok(Funnel {
        stages,
        deals: deals.len(),
        won,
        lost,
        win_rate: ratio(won, won + lost),
        mean_cycle_time: mean(&cycles),
        median_cycle_time: median(&mut cycles),
    })
}

/// How to order an owner ranking (best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerSort {
    /// Won amount, largest first.
    WonAmount,
    /// Won deals, most first.
    WonCount,
    /// Win rate of closed deals, highest first.
    ConversionRate,
    /// Open pipeline weighted by stage probability, largest first.
    WeightedPipeline,
    /// Activities, most first.
    ActivityCount,
    /// Median cycle time, shortest first (owners without wins last).
    CycleTime,
}

/// One owner's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnerStats {
    /// The owner.
    pub owner: OwnerId,
    /// Their name.
    pub name: String,
    /// Sum of amounts of deals won in the window.
    pub won_amount: Money,
    /// Deals won in the window.
    pub won_count: u64,
    /// Deals won or lost in the window.
    pub closed_count: u64,
    /// `won_count / closed_count`.
    pub conversion_rate: Option<f64>,
    /// Open deals now: amount × probability (the override or the stage's), summed.
    pub weighted_pipeline: Money,
    /// Activities they handled in the window.
    pub activity_count: u64,
    /// Median seconds from creation to win of their deals won in the window.
    pub median_cycle_time: Option<i64>,
}

/// Ranks live owners over a window `[from, to)`.
///
/// # Errors
/// A storage failure.
pub fn owner_ranking<S: Snapshot + ?Sized>(
    snap: &S,
    from: Timestamp,
    to: Timestamp,
    sort: OwnerSort,
) -> Result<Vec<OwnerStats>> {
    let machines = snap.machines()?;
    let mut stats: BTreeMap<u32, OwnerStats> = BTreeMap::new();
    let mut cycles: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    for row in &snap.live(EntityKind::Owner)? {
        let owner: Owner = snap.get(OwnerId::new(row))?;
        stats.insert(
            row,
            OwnerStats {
                owner: OwnerId::new(row),
                name: owner.name,
                won_amount: Money::ZERO,
                won_count: 0,
                closed_count: 0,
                conversion_rate: None,
                weighted_pipeline: Money::ZERO,
                activity_count: 0,
                median_cycle_time: None,
            },
        );
    }
    let in_window = |t: Timestamp| t >= from && t < to;
    for row in &snap.live(EntityKind::Deal)? {
        let deal: Deal = snap.get(DealId::new(row))?;
        let Some(owner) = deal.owner.and_then(|o| stats.get_mut(&o.get())) else {
            continue;
        };
        let Some(machine) = machines.pipelines.get(deal.pipeline_name()) else {
            continue;
        };
        let def = machine.stage(&deal.stage);
        if def.is_some_and(|d| !d.terminal) {
            let probability = deal
                .probability_override
                .or(def.and_then(|d| d.probability))
                .unwrap_or(0);
            owner.weighted_pipeline.0 += deal.amount.0.saturating_mul(i64::from(probability)) / 100;
            continue;
        }
        let history = snap.history(DealId::new(row))?;
        let Some(closing) = history.iter().rev().find(|c| c.to == deal.stage) else {
            continue;
        };
        if !in_window(closing.at) {
            continue;
        }
        owner.closed_count += 1;
        if is_won(machine, &deal.stage) {
            owner.won_count += 1;
            owner.won_amount.0 += deal.amount.0;
            if let Some(created) = history.first() {
                cycles
                    .entry(owner.owner.get())
                    .or_default()
                    .push(closing.at.0 - created.at.0);
            }
        }
    }
    let window = Query::field("at")
        .ge(Literal::Date(from.day()))
        .and(Query::field("at").lt(Literal::Date(to.day())));
    let activities = snap.ids(EntityKind::Activity, &window)?;
    for (row, owner) in stats.iter_mut() {
        let by_owner = snap.bitmap(&index::cat_key(
            EntityKind::Activity,
            "owner",
            &row.to_string(),
        ))?;
        owner.activity_count = activities.intersection_len(&by_owner);
        owner.conversion_rate = ratio(owner.won_count, owner.closed_count);
        owner.median_cycle_time = median(
            cycles
                .get_mut(row)
                .map(Vec::as_mut_slice)
                .unwrap_or(&mut []),
        );
    }
    let mut out: Vec<OwnerStats> = stats.into_values().collect();
    let key = |o: &OwnerStats| -> (i128, u32) {
        let value: i128 = match sort {
            OwnerSort::WonAmount => -i128::from(o.won_amount.0),
            OwnerSort::WonCount => -i128::from(o.won_count),
            OwnerSort::ConversionRate => -((o.conversion_rate.unwrap_or(-1.0) * 1e9) as i128),
            OwnerSort::WeightedPipeline => -i128::from(o.weighted_pipeline.0),
            OwnerSort::ActivityCount => -i128::from(o.activity_count),
            OwnerSort::CycleTime => o.median_cycle_time.map_or(i128::MAX, i128::from),
        };
        (value, o.owner.get())
    };
    out.sort_by_key(key);
    Ok(out)
}

/// Sales of one product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSales {
    /// The product.
    pub product: ProductId,
    /// Its sku.
    pub sku: String,
    /// Its category.
    pub category: Option<String>,
    /// Revenue from its lines.
    pub revenue: Money,
    /// Units sold.
    pub units: u64,
    /// Orders with at least one line of it.
    pub orders: u64,
}

/// Sales of one category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategorySales {
    /// The category (`(none)` for products without one).
    pub category: String,
    /// Revenue.
    pub revenue: Money,
    /// Units.
    pub units: u64,
    /// Orders with at least one line in the category.
    pub orders: u64,
}

/// Revenue, units and orders by product and by category, from paid live orders placed
/// on days in `[from, to)`; both lists by revenue, largest first.
///
/// # Errors
/// A storage failure.
pub fn product_sales<S: Snapshot + ?Sized>(
    snap: &S,
    from: Timestamp,
    to: Timestamp,
) -> Result<(Vec<ProductSales>, Vec<CategorySales>)> {
    let query = Query::field("status")
        .eq("paid")
        .and(Query::field("at").ge(Literal::Date(from.day())))
        .and(Query::field("at").lt(Literal::Date(to.day())));
    let mut by_product: BTreeMap<u32, ProductSales> = BTreeMap::new();
    let mut by_category: BTreeMap<String, CategorySales> = BTreeMap::new();
    for row in &snap.ids(EntityKind::Order, &query)? {
        let order: Order = snap.get(crate::schema::OrderId::new(row))?;
        debug_assert_eq!(order.status, OrderStatus::Paid);
        let mut categories_seen = Vec::new();
        let mut products_seen = Vec::new();
        for line in &order.line_items {
            let entry = match by_product.entry(line.product.get()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let product: Product = snap.get(line.product)?;
                    v.insert(ProductSales {
                        product: line.product,
                        sku: product.sku,
                        category: product.category,
                        revenue: Money::ZERO,
                        units: 0,
                        orders: 0,
                    })
                }
            };
            let amount = line.amount().unwrap_or(Money::ZERO);
            entry.revenue.0 += amount.0;
            entry.units += u64::from(line.quantity);
            if !products_seen.contains(&line.product) {
                products_seen.push(line.product);
                entry.orders += 1;
            }
            let category = entry.category.clone().unwrap_or_else(|| "(none)".into());
            let cat = by_category
                .entry(category.clone())
                .or_insert_with(|| CategorySales {
                    category: category.clone(),
                    revenue: Money::ZERO,
                    units: 0,
                    orders: 0,
                });
            cat.revenue.0 += amount.0;
            cat.units += u64::from(line.quantity);
            if !categories_seen.contains(&category) {
                categories_seen.push(category);
                cat.orders += 1;
            }
        }
    }
    let mut products: Vec<ProductSales> = by_product.into_values().collect();
    products.sort_by(|a, b| b.revenue.cmp(&a.revenue).then(a.product.cmp(&b.product)));
    let mut categories: Vec<CategorySales> = by_category.into_values().collect();
    categories.sort_by(|a, b| {
        b.revenue
            .cmp(&a.revenue)
            .then_with(|| a.category.cmp(&b.category))
    });
    Ok((products, categories))
}

/// When RFM scores were last refreshed and what the refresh found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RfmState {
    /// The `now` the refresh used.
    pub refreshed_at: Timestamp,
    /// Live contacts with at least one paid order.
    pub customers: u64,
    /// Customers in the `top20` tier.
    pub top20: u64,
    /// Share of total spent that the `top20` tier holds (the 80/20 check).
    pub top20_revenue_share: f64,
}

/// The last RFM refresh, if any. A scoped snapshot (see `Database::read_as`) gets the
/// refresh's figures for the customers it sees: those the refresh tiered (`tier:top20`
/// or `tier:rest`), their `top20` share and the revenue share it holds, worked out
/// from the tier bitmaps and `total_spent` as the scope narrows them.
///
/// # Errors
/// A storage failure.
pub fn rfm_state<S: Snapshot + ?Sized>(snap: &S) -> Result<Option<RfmState>> {
    let stored: RfmState = match snap.meta_bytes(meta::RFM)? {
        Some(bytes) => codec::decode("meta", &meta::RFM, &bytes)?,
        None => return Ok(None),
    };
    let kind = EntityKind::Contact;
    if snap.narrowing(kind)?.is_none() {
        return Ok(Some(stored));
    }
    let top20 = snap.bitmap(&index::cat_key(kind, "tier", "top20"))?;
    let customers = &*top20 | &*snap.bitmap(&index::cat_key(kind, "tier", "rest"))?;
    let spent = snap.bsi(&index::bsi_base(kind, "total_spent"))?;
    let (total, top) = (spent.sum(&customers), spent.sum(&top20));
    Ok(Some(RfmState {
        refreshed_at: stored.refreshed_at,
        customers: customers.len(),
        top20: top20.len(),
        top20_revenue_share: share(top, total),
    }))
}

/// `top / total`, 0 when there is no total.
fn share(top: i128, total: i128) -> f64 {
    if total > 0 {
        top as f64 / total as f64
    } else {
        0.0
    }
}

/// Splits `filter ∩ exists` into `bands` groups of (nearly) equal size, best first:
/// largest values when `descending`; ties broken by row id.
fn bands(bsi: &Bsi, filter: &RoaringBitmap, bands: u64, descending: bool) -> Vec<RoaringBitmap> {
    let mut remaining = filter & &bsi.exists;
    let n = remaining.len();
    let mut out = Vec::with_capacity(bands as usize);
    for i in 0..bands {
        let size = n * (i + 1) / bands - n * i / bands;
        let band = bsi.top_k(&remaining, size, descending);
        remaining -= &band;
        out.push(band);
    }
    out
}

impl WriteTransaction {
    /// Recomputes RFM scores and value tiers for live contacts with paid orders, as of
    /// `now`: recency (days since the last order), frequency (paid orders) and monetary
    /// (total spent) each scored 1–5 by quintile (5 best; ties by row id); `tier` is
    /// `top20` for the top 20% of customers by total spent and `rest` for the others;
    /// `band` is 1–10 by decile of total spent (1 best). Queryable as `rfm.recency`,
    /// `rfm.frequency`, `rfm.monetary`, `tier:top20`, `band:1`. See the module docs for
    /// the staleness rule.
    ///
    /// # Errors
    /// A storage failure.
    pub fn refresh_rfm(&mut self, now: Timestamp) -> Result<RfmState> {
        let kind = EntityKind::Contact;
        let live = self.live(kind)?;
        let last_order = self.bsi(&index::bsi_base(kind, "last_order"))?;
        let customers = &live & &last_order.exists;
        let spent = self.bsi(&index::bsi_base(kind, "total_spent"))?;
        let count = self.bsi(&index::bsi_base(kind, "order_count"))?;
        let mut derived = DerivedIndexes::default();
        for (field, bsi) in [
            ("rfm.recency", &last_order),
            ("rfm.frequency", &count),
            ("rfm.monetary", &spent),
        ] {
            let groups = bands(bsi, &customers, 5, true);
            let mut target = Bsi::default();
            for (i, group) in groups.iter().enumerate() {
                target.insert_rows(5 - i as i64, group);
            }
            derived.nums.push((field, target));
        }
        let deciles = bands(&spent, &customers, 10, true);
        let top20_count = customers.len() / 5;
        let top20 = spent.top_k(&customers, top20_count, true);
        let rest = &customers - &top20;
        derived
            .cats
            .insert(index::cat_key(kind, "tier", "top20"), top20.clone());
        derived
            .cats
            .insert(index::cat_key(kind, "tier", "rest"), rest);
        for (i, decile) in deciles.into_iter().enumerate() {
            derived
                .cats
                .insert(index::cat_key(kind, "band", &(i + 1).to_string()), decile);
        }
        let total = spent.sum(&customers);
        let top = spent.sum(&top20);
        let state = RfmState {
            refreshed_at: now,
            customers: customers.len(),
            top20: top20.len(),
            top20_revenue_share: share(top, total),
        };
        self.replace_derived(kind, derived, (meta::RFM, codec::encode(&state)))?;
        Ok(state)
    }
}
