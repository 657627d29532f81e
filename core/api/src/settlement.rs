//! Settlement in GraphQL: price libraries, tiers, participants, `settleBill`, `refundBill`,
//! `bill`, `verifyBill` and `statement`.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use super::{ErrorExt, actor, db, events::MoneyValue};
use shoal_plugin_host::Reloader;
use shoal_settlement::{self as settlement, Bill, BillKind, LineKind, PriceKind, Verification};

pub(crate) fn host<'a>(ctx: &Context<'a>) -> &'a shoal_plugin_host::PluginHost {
    &ctx.data_unchecked::<Reloader>().host
}

/// Money shown with at least its currency's minor-unit places (`30` → `30.00`, `¥5` → `5`).
fn money(amount: Decimal, currency: &str) -> MoneyValue {
    let mut amount = amount.normalize();
    let places = settlement::minor_unit(currency);
    if amount.scale() < places {
        amount.rescale(places);
    }
    MoneyValue {
        amount,
        currency: currency.to_owned(),
    }
}

/// A priced service (labour) version.
#[derive(InputObject, Debug)]
pub struct ServiceItemInput {
    pub code: String,
    pub name: String,
    #[graphql(default)]
    pub category: String,
    pub unit_price: Decimal,
    pub currency: String,
    #[graphql(default)]
    pub labour_minutes: i64,
    /// When this price starts to apply (default: the epoch, i.e. always).
    pub effective_from: Option<DateTime<Utc>>,
    /// When it stops; without it, a later version closes it.
    pub effective_to: Option<DateTime<Utc>>,
}

#[derive(InputObject, Debug)]
pub struct SparePartInput {
    pub sku: String,
    pub name: String,
    pub cost: Decimal,
    pub list_price: Decimal,
    pub currency: String,
    pub unit: String,
    pub effective_from: Option<DateTime<Utc>>,
    pub effective_to: Option<DateTime<Utc>>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceLibrary {
    ServiceItems,
    SpareParts,
}

#[derive(InputObject, Debug)]
pub struct ParticipantInput {
    pub id: ID,
    pub name: String,
    /// `hq`, `region`, `agent`, `store`, `staff`, …
    pub role: String,
    pub parent_id: Option<ID>,
    /// The split/commission agreement, read by the settlement module (e.g. `{weight: 2}`).
    pub agreement: Option<async_graphql::Json<serde_json::Value>>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillLineKind {
    /// From the service-item library.
    Service,
    /// From the spare-part library.
    Part,
    Transport,
    Discount,
    Coupon,
    Adjustment,
}

#[derive(InputObject, Debug)]
pub struct SettleLineInput {
    pub kind: BillLineKind,
    /// Service-item code or part SKU; a label for other kinds.
    pub code: String,
    pub quantity: Decimal,
    /// Required for transport, discount, coupon and adjustment lines (discounts and coupons
    /// as positive amounts); service items and parts are priced by the library.
    pub unit_price: Option<Decimal>,
    pub description: Option<String>,
}

impl SettleLineInput {
    pub(crate) fn domain(self) -> settlement::LineInput {
        settlement::LineInput {
            kind: match self.kind {
                BillLineKind::Service => LineKind::Service,
                BillLineKind::Part => LineKind::Part,
                BillLineKind::Transport => LineKind::Transport,
                BillLineKind::Discount => LineKind::Discount,
                BillLineKind::Coupon => LineKind::Coupon,
                BillLineKind::Adjustment => LineKind::Adjustment,
            },
            code: self.code,
            quantity: self.quantity,
            unit_price: self.unit_price,
            description: self.description,
        }
    }
}

/// A spare part's stock: on hand, reserved by open repairs, available.
#[derive(SimpleObject, Debug, Clone)]
pub struct SparePartStock {
    pub sku: String,
    pub on_hand: Decimal,
    pub reserved: Decimal,
    pub available: Decimal,
}

impl From<settlement::stock::Stock> for SparePartStock {
    fn from(s: settlement::stock::Stock) -> Self {
        SparePartStock {
            available: s.available().normalize(),
            on_hand: s.on_hand.normalize(),
            reserved: s.reserved.normalize(),
            sku: s.sku,
        }
    }
}

#[derive(InputObject, Debug)]
pub struct SettleBillInput {
    /// The settlement module; by default the tenant's only one.
    pub module: Option<String>,
    /// The order, ticket or visit the bill is for.
    pub reference: String,
    pub customer_id: Option<ID>,
    pub region: String,
    pub currency: String,
    /// Library prices in effect at this time (default: now).
    pub priced_at: Option<DateTime<Utc>>,
    pub lines: Vec<SettleLineInput>,
    /// Who shares the revenue (their ancestors are included).
    pub participant_ids: Vec<ID>,
    /// Facts for the module, a JSON object: installments, insurance, a clawback… (each
    /// module's README says which it reads).
    pub facts: Option<async_graphql::Json<serde_json::Value>>,
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillKindValue {
    Sale,
    Refund,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct ModuleRef {
    pub id: String,
    pub version: String,
    pub sha256: String,
}

/// One line: where the money of the bill comes from.
#[derive(SimpleObject, Debug, Clone)]
pub struct BillLineValue {
    pub line_no: i64,
    pub code: String,
    pub description: String,
    /// `labour`, `part`, `transport`, `adjustment`, …
    pub kind: String,
    pub quantity: String,
    /// The library (or given) unit price.
    pub base_price: MoneyValue,
    /// The unit price after the module's adjustments (regional tier, …).
    pub unit_price: MoneyValue,
    /// `unitPrice - basePrice`.
    pub adjustment: MoneyValue,
    pub amount: MoneyValue,
    /// Why the price differs, in the module's words.
    pub note: Option<String>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct PostingValue {
    pub bill_id: ID,
    /// `customer:<id>` or `participant:<id>`.
    pub account: String,
    /// Positive: received; negative: paid.
    pub amount: MoneyValue,
    pub reason: String,
    pub posted_at: DateTime<Utc>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct SplitValue {
    pub participant_id: ID,
    pub amount: MoneyValue,
    pub reason: String,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct BillValue {
    pub id: ID,
    pub kind: BillKindValue,
    /// For a refund: the bill it reverses.
    pub original_id: Option<ID>,
    pub reference: String,
    pub customer_id: Option<ID>,
    pub region: String,
    pub total: MoneyValue,
    /// The module (exact version and SHA-256) that settled the bill.
    pub module: ModuleRef,
    pub lines: Vec<BillLineValue>,
    pub splits: Vec<SplitValue>,
    pub postings: Vec<PostingValue>,
    pub notes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

fn posting(p: &settlement::Posting) -> PostingValue {
    PostingValue {
        bill_id: ID(p.bill_id.clone()),
        account: p.account.clone(),
        amount: money(p.amount, &p.currency),
        reason: p.reason.clone(),
        posted_at: p.posted_at,
    }
}

impl From<Bill> for BillValue {
    fn from(b: Bill) -> Self {
        let c = b.currency.clone();
        BillValue {
            id: ID(b.id),
            kind: match b.kind {
                BillKind::Sale => BillKindValue::Sale,
                BillKind::Refund => BillKindValue::Refund,
            },
            original_id: b.original_id.map(ID),
            reference: b.reference,
            customer_id: b.customer_id.map(ID),
            region: b.region,
            total: money(b.total, &c),
            module: ModuleRef {
                id: b.module_id,
                version: b.module_version,
                sha256: b.module_sha256,
            },
            lines: b
                .lines
                .into_iter()
                .map(|l| BillLineValue {
                    line_no: l.line_no,
                    code: l.code,
                    description: l.description,
                    kind: l.kind,
                    quantity: l.quantity,
                    base_price: money(l.base_price, &c),
                    unit_price: money(l.unit_price, &c),
                    adjustment: money(l.unit_price - l.base_price, &c),
                    amount: money(l.amount, &c),
                    note: l.note,
                })
                .collect(),
            splits: b
                .postings
                .iter()
                .filter_map(|p| {
                    p.account.strip_prefix("participant:").map(|id| SplitValue {
                        participant_id: ID(id.to_owned()),
                        amount: money(p.amount, &p.currency),
                        reason: p.reason.clone(),
                    })
                })
                .collect(),
            postings: b.postings.iter().map(posting).collect(),
            notes: b.notes,
            created_at: b.created_at,
            created_by: b.created_by,
        }
    }
}

#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerificationStatus {
    /// Re-running the bill gives exactly the recorded result.
    Identical,
    Different,
    /// The module version that settled the bill is no longer loaded.
    ModuleUnavailable,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct BillVerification {
    pub status: VerificationStatus,
    /// The first difference, or which module version is missing.
    pub detail: Option<String>,
}

#[derive(SimpleObject, Debug, Clone)]
pub struct StatementValue {
    pub participant_id: ID,
    pub participant_name: String,
    pub role: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The sum of the period's postings, one per currency.
    pub totals: Vec<MoneyValue>,
    pub postings: Vec<PostingValue>,
}

/// A participant of the tenant's settlement (HQ, an agent, a store, a staff member).
#[derive(SimpleObject, Debug, Clone)]
pub struct ParticipantValue {
    pub id: ID,
    pub name: String,
    /// `hq`, `agent`, `store`, `staff`, … (the tenant's own words).
    pub role: String,
    /// The participant above it in the hierarchy.
    pub parent_id: Option<ID>,
}

#[derive(Default)]
pub struct SettlementQuery;

#[Object]
impl SettlementQuery {
    /// The counted spare parts' stock (a SKU without a count is not tracked), by SKU.
    async fn spare_part_stock(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<SparePartStock>> {
        let actor = actor(ctx).gql()?;
        Ok(settlement::stock::all(db(ctx), actor.tenant_id())
            .await
            .gql()?
            .into_iter()
            .map(SparePartStock::from)
            .collect())
    }

    /// The bills a customer paid (refunds included), newest first (`first` ≤ 100). The
    /// customer must be in the caller's bills scope (`NOT_FOUND` otherwise).
    async fn customer_bills(
        &self,
        ctx: &Context<'_>,
        customer_id: ID,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<BillValue>> {
        let actor = actor(ctx).gql()?;
        let customer = actor
            .access
            .scope_customer(db(ctx), shoal_base::kinds::Resource::Bills, customer_id.0)
            .await
            .gql()?;
        Ok(
            settlement::of_customer(db(ctx), &customer, i64::from(first))
                .await
                .gql()?
                .into_iter()
                .map(Into::into)
                .collect(),
        )
    }

    /// A bill with every line (base price, adjustment, reason), its splits and postings.
    async fn bill(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<BillValue> {
        let actor = actor(ctx).gql()?;
        Ok(settlement::get_visible(db(ctx), actor, &id)
            .await
            .gql()?
            .into())
    }

    /// Re-runs a bill on the recorded module version, input and parameters.
    async fn verify_bill(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<BillVerification> {
        let actor = actor(ctx).gql()?;
        settlement::ensure_visible(db(ctx), actor, &id)
            .await
            .gql()?;
        let outcome = settlement::verify(db(ctx), host(ctx), actor.tenant_id(), &id)
            .await
            .gql()?;
        Ok(match outcome {
            Verification::Identical => BillVerification {
                status: VerificationStatus::Identical,
                detail: None,
            },
            Verification::Different(d) => BillVerification {
                status: VerificationStatus::Different,
                detail: Some(d),
            },
            Verification::ModuleUnavailable(d) => BillVerification {
                status: VerificationStatus::ModuleUnavailable,
                detail: Some(d),
            },
        })
    }

    /// The participants, by id: for those who may read statements (action `export`, scope
    /// `all` on bills). Their agreements stay in the configuration.
    async fn participants(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ParticipantValue>> {
        let actor = actor(ctx).gql()?;
        Ok(settlement::participants_for(db(ctx), actor)
            .await
            .gql()?
            .into_iter()
            .map(|p| ParticipantValue {
                id: ID(p.id),
                name: p.name,
                role: p.role,
                parent_id: p.parent_id.map(ID),
            })
            .collect())
    }

    /// A participant's postings in `[from, to)` with totals (CSV: `GET /statements/<id>.csv?from=…&to=…`).
    async fn statement(
        &self,
        ctx: &Context<'_>,
        participant_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> async_graphql::Result<StatementValue> {
        let actor = actor(ctx).gql()?;
        let s = settlement::statement_for(db(ctx), actor, &participant_id, from, to)
            .await
            .gql()?;
        Ok(StatementValue {
            participant_id: ID(s.participant.id),
            participant_name: s.participant.name,
            role: s.participant.role,
            from: s.from,
            to: s.to,
            totals: s.totals.iter().map(|(c, t)| money(*t, c)).collect(),
            postings: s.postings.iter().map(posting).collect(),
        })
    }
}

#[derive(Default)]
pub struct SettlementMutation;

#[Object]
impl SettlementMutation {
    /// Adds or replaces service-item price versions (up to 1,000, all or nothing).
    async fn upsert_service_items(
        &self,
        ctx: &Context<'_>,
        input: Vec<ServiceItemInput>,
    ) -> async_graphql::Result<i32> {
        let actor = actor(ctx).gql()?;
        let items: Vec<_> = input
            .into_iter()
            .map(|i| settlement::ServiceItem {
                code: i.code,
                name: i.name,
                category: i.category,
                unit_price: i.unit_price,
                currency: i.currency,
                labour_minutes: i.labour_minutes,
                effective_from: i.effective_from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                effective_to: i.effective_to,
            })
            .collect();
        Ok(
            settlement::upsert_service_items(db(ctx), actor, &items, "input")
                .await
                .gql()? as i32,
        )
    }

    /// Adds or replaces spare-part price versions (up to 1,000, all or nothing).
    async fn upsert_spare_parts(
        &self,
        ctx: &Context<'_>,
        input: Vec<SparePartInput>,
    ) -> async_graphql::Result<i32> {
        let actor = actor(ctx).gql()?;
        let parts: Vec<_> = input
            .into_iter()
            .map(|p| settlement::SparePart {
                sku: p.sku,
                name: p.name,
                cost: p.cost,
                list_price: p.list_price,
                currency: p.currency,
                unit: p.unit,
                effective_from: p.effective_from.unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
                effective_to: p.effective_to,
            })
            .collect();
        Ok(
            settlement::upsert_spare_parts(db(ctx), actor, &parts, "input")
                .await
                .gql()? as i32,
        )
    }

    /// Imports a price library from CSV text (see docs/settlement.md for the columns).
    async fn import_price_library(
        &self,
        ctx: &Context<'_>,
        library: PriceLibrary,
        csv: String,
    ) -> async_graphql::Result<i32> {
        let actor = actor(ctx).gql()?;
        let kind = match library {
            PriceLibrary::ServiceItems => PriceKind::Service,
            PriceLibrary::SpareParts => PriceKind::Part,
        };
        let (items, parts) = settlement::parse_csv(&csv, kind).gql()?;
        let n = match kind {
            PriceKind::Service => {
                settlement::upsert_service_items(db(ctx), actor, &items, "csv").await
            }
            PriceKind::Part => settlement::upsert_spare_parts(db(ctx), actor, &parts, "csv").await,
        };
        Ok(n.gql()? as i32)
    }

    /// Puts a region in a tier (overrides the module's parameters for this tenant).
    async fn set_region_tier(
        &self,
        ctx: &Context<'_>,
        region: String,
        tier: String,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        settlement::set_region_tier(db(ctx), actor, &region, &tier)
            .await
            .gql()?;
        Ok(true)
    }

    /// Sets a tier's adjustment: `percent` (10 = +10%) or a fixed `amount` per unit.
    async fn set_tier_adjustment(
        &self,
        ctx: &Context<'_>,
        tier: String,
        percent: Option<Decimal>,
        amount: Option<Decimal>,
    ) -> async_graphql::Result<bool> {
        let actor = actor(ctx).gql()?;
        settlement::set_tier_adjustment(db(ctx), actor, &tier, percent, amount)
            .await
            .gql()?;
        Ok(true)
    }

    /// Adds or replaces participants (HQ, agents, stores, staff) and their hierarchy.
    async fn upsert_participants(
        &self,
        ctx: &Context<'_>,
        input: Vec<ParticipantInput>,
    ) -> async_graphql::Result<i32> {
        let actor = actor(ctx).gql()?;
        let list: Vec<_> = input
            .into_iter()
            .map(|p| settlement::Participant {
                id: p.id.0,
                name: p.name,
                role: p.role,
                parent_id: p.parent_id.map(|i| i.0),
                agreement: p
                    .agreement
                    .and_then(|j| j.0.as_object().cloned())
                    .unwrap_or_default(),
            })
            .collect();
        settlement::upsert_participants(db(ctx), actor, &list)
            .await
            .gql()?;
        Ok(list.len() as i32)
    }

    /// Records a spare part's count on hand (a stocktake; permission `configure`): from then
    /// on repairs reserve it and bills consume it.
    async fn set_spare_part_stock(
        &self,
        ctx: &Context<'_>,
        sku: String,
        on_hand: Decimal,
    ) -> async_graphql::Result<SparePartStock> {
        let actor = actor(ctx).gql()?;
        Ok(
            settlement::stock::set_on_hand(db(ctx), actor, &sku, on_hand)
                .await
                .gql()?
                .into(),
        )
    }

    /// Prices the lines, settles the bill with the tenant's module, checks and stores it.
    async fn settle_bill(
        &self,
        ctx: &Context<'_>,
        input: SettleBillInput,
    ) -> async_graphql::Result<BillValue> {
        let actor = actor(ctx).gql()?;
        if input.reference.starts_with("ticket:") {
            return Err(shoal_base::error::Error::invalid(
                "input.reference",
                "`ticket:` references are written by settleTicket",
            ))
            .gql();
        }
        let input = settlement::SettleInput {
            module: input.module,
            reference: input.reference,
            customer_id: input.customer_id.map(|i| i.0),
            region: input.region,
            currency: input.currency,
            priced_at: input.priced_at,
            lines: input
                .lines
                .into_iter()
                .map(SettleLineInput::domain)
                .collect(),
            participant_ids: input.participant_ids.into_iter().map(|i| i.0).collect(),
            facts: input.facts.map(|j| j.0),
        };
        let customer = match &input.customer_id {
            Some(id) => Some(
                actor
                    .access
                    .scope_customer(db(ctx), shoal_base::kinds::Resource::Bills, id.clone())
                    .await
                    .gql()?,
            ),
            None => None,
        };
        Ok(
            settlement::settle(db(ctx), host(ctx), actor, customer.as_ref(), &input)
                .await
                .gql()?
                .into(),
        )
    }

    /// Refunds a sale in full with a new bill that reverses it (the original is untouched).
    async fn refund_bill(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
    ) -> async_graphql::Result<BillValue> {
        let actor = actor(ctx).gql()?;
        Ok(settlement::refund(db(ctx), actor, &id, &reason)
            .await
            .gql()?
            .into())
    }
}
