//! The demo tenant: `shoal serve --demo` adds it to the config and, on first run, seeds a few
//! thousand realistic customers with a year of events. Generation is deterministic (a fixed
//! seed), so every fresh demo database looks the same.

use chrono::{Duration, Utc};
use rust_decimal::Decimal;
use serde_json::json;

use shoal_base::{
    config::{ApiKeyConfig, Config, TenantConfig, UserConfig, sha256_hex},
    error::Result,
    kinds::{Channel, LifecycleStage},
    storage::{Db, time},
};
use shoal_crm::{
    audit,
    customers::{self, Customer, Identity},
    events::{self, Event, EventType, Money},
    tenancy::{Actor, Tenant},
};

pub const TENANT_ID: &str = "demo";
/// Environment variable that fixes the demo API key (otherwise a random one is printed).
pub const API_KEY_ENV: &str = "SHOAL_DEMO_API_KEY";
pub const CUSTOMERS: usize = 3000;
/// Environment variable that fixes the demo admin's console password (otherwise a random
/// one is set at every start and printed).
pub const PASSWORD_ENV: &str = "SHOAL_DEMO_PASSWORD";

/// The demo admin's console password: `SHOAL_DEMO_PASSWORD` if set (10+ characters), else a
/// random one.
pub fn console_password() -> String {
    std::env::var(PASSWORD_ENV)
        .ok()
        .filter(|p| p.chars().count() >= 10)
        .unwrap_or_else(|| format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]))
}

/// Sets the demo `admin`'s console password (ending its sessions), as the host itself.
pub async fn set_console_password(
    db: &Db,
    tenant: &std::sync::Arc<Tenant>,
    password: &str,
) -> shoal_base::error::Result<()> {
    let host = shoal_crm::tenancy::Actor::system(tenant, "demo");
    shoal_crm::credentials::passwords::set(db, &host, "admin", password, None).await
}

/// The demo API key: `SHOAL_DEMO_API_KEY` if set (16+ characters), else a random one.
pub fn api_key() -> String {
    std::env::var(API_KEY_ENV)
        .ok()
        .filter(|k| k.len() >= 16)
        .unwrap_or_else(|| format!("demo_{}", uuid::Uuid::new_v4().simple()))
}

/// Adds the demo tenant with `key` unless the config declares a `demo` tenant itself;
/// returns whether it was added. Every industry module in the plugins folder is enabled.
pub fn add_tenant(config: &mut Config, key: &str) -> bool {
    if config.tenants.contains_key(TENANT_ID) {
        return false;
    }
    let user = |name: &str, email: &str, department: &str, role: &str| UserConfig {
        email: Some(email.into()),
        department: Some(department.into()),
        ..UserConfig::new(name, role)
    };
    let mut tenant = TenantConfig::new("Demo 零售 (Shoal demo)", chrono_tz::Asia::Shanghai);
    tenant.users.insert(
        "admin".into(),
        user("Demo Admin", "admin@demo.shoal.dev", "总部", "admin"),
    );
    for (id, name, email, dept) in [
        (
            "wang-fang",
            "王芳",
            "wang.fang@demo.shoal.dev",
            "上海徐汇店",
        ),
        (
            "zhang-wei",
            "张伟",
            "zhang.wei@demo.shoal.dev",
            "北京朝阳店",
        ),
        (
            "emily-chen",
            "Emily Chen",
            "emily.chen@demo.shoal.dev",
            "Online",
        ),
    ] {
        tenant
            .users
            .insert(id.into(), user(name, email, dept, "agent"));
    }
    tenant.api_keys.insert(
        "demo".into(),
        ApiKeyConfig {
            user: "admin".into(),
            sha256: Some(sha256_hex(key)),
            env: None,
        },
    );
    for module in installed_modules(&config.plugins.dir) {
        tenant.modules.insert(
            module,
            shoal_base::config::ModuleConfig {
                enabled: true,
                params: Default::default(),
                version: None,
            },
        );
    }
    config.tenants.insert(TENANT_ID.into(), tenant);
    true
}

/// Gives each built-in industry demo tenant (`demo-retail`, …) without keys an API key,
/// `<key>-<industry>`, acting as its `admin`; returns (tenant, key) pairs to print.
pub fn industry_keys(config: &mut Config, key: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (id, tenant) in &mut config.tenants {
        let Some(industry) = id.strip_prefix("demo-") else {
            continue;
        };
        if !tenant.api_keys.is_empty() || !tenant.users.contains_key("admin") {
            continue;
        }
        let k = format!("{key}-{industry}");
        tenant.api_keys.insert(
            "demo".into(),
            ApiKeyConfig {
                user: "admin".into(),
                sha256: Some(sha256_hex(&k)),
                env: None,
            },
        );
        out.push((id.clone(), k));
    }
    out
}

/// Ids of the modules in a plugins folder (from their manifests).
fn installed_modules(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| shoal_plugin_host::Manifest::read(&e.path()).ok())
                .map(|(m, _)| m.id)
                .collect()
        })
        .unwrap_or_default()
}

/// A small deterministic generator (xorshift64*), enough for demo data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀英", "婷婷", "子涵", "浩然", "雨桐", "欣怡", "梓萱",
];
const FIRST: &[&str] = &[
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Ethan", "Sophia", "Lucas", "Mia", "Mason", "Grace",
    "Daniel",
];
const LAST: &[&str] = &[
    "Smith", "Johnson", "Brown", "Taylor", "Wilson", "Lee", "Wong", "Chan", "Walker", "Clarke",
];
const CN_CITIES: &[&str] = &[
    "北京", "上海", "广州", "深圳", "杭州", "成都", "南京", "武汉", "西安", "苏州",
];
const EN_CITIES: &[&str] = &[
    "Singapore",
    "Hong Kong",
    "London",
    "San Francisco",
    "Sydney",
];
const OWNERS: &[&str] = &["wang-fang", "zhang-wei", "emily-chen"];
const PAGES: &[&str] = &[
    "/products/serum",
    "/products/cream",
    "/campaign/double-11",
    "/courses/trial",
    "/stores",
];

fn customer(
    rng: &mut Rng,
    i: usize,
    created_at: chrono::DateTime<Utc>,
) -> (Customer, Vec<Identity>) {
    let english = rng.chance(20);
    let (name, phone, city) = if english {
        (
            format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
            format!("+1415{}{:06}", 2 + rng.below(7), rng.below(1_000_000)),
            *rng.pick(EN_CITIES),
        )
    } else {
        (
            format!("{}{}", rng.pick(SURNAMES), rng.pick(GIVEN)),
            format!(
                "+861{}{:09}",
                rng.pick(&[3, 5, 7, 8, 9]),
                rng.below(1_000_000_000)
            ),
            *rng.pick(CN_CITIES),
        )
    };
    let channel = *rng.pick(&[
        Channel::Wecom,
        Channel::Wechat,
        Channel::Shop,
        Channel::Store,
        Channel::Web,
    ]);
    let mut identities = Vec::new();
    let external = |prefix: &str| format!("{prefix}{i:06}");
    match channel {
        Channel::Wecom => identities.push(Identity {
            channel,
            external_id: external("wmdemo_"),
        }),
        Channel::Wechat => identities.push(Identity {
            channel,
            external_id: external("o6_demo_union_"),
        }),
        Channel::Shop => identities.push(Identity {
            channel,
            external_id: external("tb_buyer_"),
        }),
        Channel::Store => identities.push(Identity {
            channel,
            external_id: external("M"),
        }),
        _ => {}
    }
    let emails = if english || rng.chance(30) {
        vec![format!("customer{i}@example.com")]
    } else {
        vec![]
    };
    let stage = *rng.pick(&[
        LifecycleStage::Lead,
        LifecycleStage::Prospect,
        LifecycleStage::Customer,
        LifecycleStage::Customer,
        LifecycleStage::Loyal,
        LifecycleStage::Dormant,
        LifecycleStage::Churned,
    ]);
    let attributes = json!({
        "city": city,
        "member_level": rng.pick(&["普通", "银卡", "金卡", "钻石"]),
        "vip": rng.chance(10),
        "birth_year": 1960 + rng.below(45),
    });
    let customer = Customer {
        id: uuid::Uuid::now_v7().to_string(),
        display_name: name,
        phones: vec![phone],
        emails,
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        lifecycle_stage: stage,
        stage_manual: false,
        owner_id: rng.chance(70).then(|| rng.pick(OWNERS).to_string()),
        source_channel: channel,
        created_at,
        updated_at: created_at,
        version: 1,
    };
    (customer, identities)
}

fn events_for(rng: &mut Rng, c: &Customer, now: chrono::DateTime<Utc>) -> Vec<Event> {
    let n = rng.below(16);
    let span = (now - c.created_at).num_seconds().max(1) as u64;
    (0..n)
        .map(|_| {
            let event_type = *rng.pick(&[
                EventType::PageView,
                EventType::PageView,
                EventType::Consult,
                EventType::Order,
                EventType::Order,
                EventType::MessageIn,
                EventType::MessageOut,
                EventType::Visit,
                EventType::CouponUsed,
                EventType::Refund,
            ]);
            let occurred_at = c.created_at + Duration::seconds(rng.below(span) as i64);
            let amount = match event_type {
                EventType::Order | EventType::Refund => Some(Money {
                    amount: Decimal::new(4900 + rng.below(295_000) as i64, 2),
                    currency: "CNY".into(),
                }),
                _ => None,
            };
            let payload = match event_type {
                EventType::PageView => json!({ "path": rng.pick(PAGES) }),
                EventType::Order => json!({ "order_no": format!("SO{}", rng.below(10_000_000)), "items": 1 + rng.below(4) }),
                EventType::Consult => json!({ "topic": rng.pick(&["价格", "成分", "售后", "课程安排"]) }),
                _ => json!({}),
            };
            Event {
                id: uuid::Uuid::now_v7().to_string(),
                customer_id: c.id.clone(),
                event_type,
                name: None,
                occurred_at: time::from_micros(time::to_micros(occurred_at)),
                recorded_at: occurred_at,
                channel: Some(c.source_channel),
                amount,
                payload,
                idempotency_key: None,
            }
        })
        .collect()
}

/// Seeds the demo tenant if it has no customers yet; returns how many were created.
pub async fn seed(db: &Db, tenant: &std::sync::Arc<Tenant>) -> Result<usize> {
    let existing: i64 = sqlx::Row::try_get(
        &sqlx::query("SELECT COUNT(*) AS n FROM customers WHERE tenant_id = $1")
            .bind(&tenant.id)
            .fetch_one(&db.pool)
            .await?,
        "n",
    )?;
    if existing > 0 {
        return Ok(0);
    }
    let (customers, events) = generate(CUSTOMERS, 0, 0x5EED, true);
    let mut tx = db.begin_write().await?;
    customers::insert_many(&mut tx, db, &tenant.id, &customers).await?;
    events::insert_many(&mut tx, &tenant.id, &events).await?;
    let actor = Actor::system(tenant, "admin");
    audit::record(
        &mut tx,
        &actor,
        "demo.seed",
        "tenant",
        &tenant.id,
        json!({ "customers": customers.len(), "events": events.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(customers.len())
}

/// `n` customers created over the past year, with their events if asked (benchmarks use
/// the customers alone).
/// External identities are numbered from `first`, so batches generated one after another
/// do not collide.
pub fn generate(
    n: usize,
    first: usize,
    seed: u64,
    with_events: bool,
) -> (Vec<(Customer, Vec<Identity>)>, Vec<Event>) {
    let mut rng = Rng(seed | 1);
    let now = time::now();
    let mut customers = Vec::with_capacity(n);
    let mut events = Vec::new();
    for i in first..first + n {
        let created_at = now - Duration::seconds(rng.below(365 * 86_400) as i64 + 3600);
        let (c, ids) = customer(&mut rng, i, created_at);
        if with_events {
            events.extend(events_for(&mut rng, &c, now));
        }
        customers.push((c, ids));
    }
    (customers, events)
}
