//! Customer import throughput with deduplication, against the physical floor: the
//! database's own CSV loader (sqlite3's `.import`, psql's `\copy`) filling a plain table
//! with the same file, timed in the same run — on SQLite and, when reachable, PostgreSQL
//! (`SHOAL_BENCH_BACKENDS=sqlite` keeps one). On SQLite a third figure splits the gap: the
//! same rows written by plain SQL into Shoal's own tables (the floor of its storage).
//!
//! `cargo xtask bench --bench import` (1,000,000 rows; `SHOAL_BENCH_IMPORT_ROWS` to
//! change). Every 50th row repeats an earlier customer's phone (merged automatically) and
//! names repeat (so fuzzy candidates are looked up and scored), as in a real CRM export.

use std::{io::Write, path::Path, process::Command, time::Instant};

use shoal_crm::tenancy::Directory;
use shoal_data::import::{self, Format, Input, Request, Silent};

mod common;

const SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤";
const GIVEN: &str = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞宇浩凯健俊帆帅旭宁龙林欣婷雪琳晨阳佳怡子涵梓萱思雨";

fn write_csv(path: &Path, rows: usize) {
    let surnames: Vec<char> = SURNAMES.chars().collect();
    let given: Vec<char> = GIVEN.chars().collect();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "姓名,手机,邮箱,会员号,城市,生日").unwrap();
    let cities = [
        "上海", "北京", "广州", "深圳", "杭州", "成都", "武汉", "洛阳",
    ];
    for i in 0..rows {
        // a deterministic walk over names and numbers
        let k = i.wrapping_mul(2_654_435_761) % 1_000_003;
        let name: String = [
            surnames[k % surnames.len()],
            given[(k / 7) % given.len()],
            given[(k / 331) % given.len()],
        ]
        .iter()
        .collect();
        let phone = if i % 50 == 49 {
            13_000_000_000u64 + (i - 25) as u64
        } else {
            13_000_000_000u64 + i as u64
        };
        let email = if i % 3 == 0 {
            format!("user{i}@example.com")
        } else {
            String::new()
        };
        writeln!(
            out,
            "{name},{phone},{email},M{i:08},{},{}-{:02}-{:02}",
            cities[i % cities.len()],
            1960 + i % 45,
            1 + i % 12,
            1 + i % 28
        )
        .unwrap();
    }
}

const MAPPING: &str = r#"
[columns]
display_name = "姓名"
phones = "手机"
emails = "邮箱"
[identities]
store = "会员号"
[attributes]
city = "城市"
birthday = { column = "生日", type = "date" }
"#;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let rows: usize = std::env::var("SHOAL_BENCH_IMPORT_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("shoal-import-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("customers.csv");
    write_csv(&csv, rows);
    let size = std::fs::metadata(&csv).unwrap().len();
    println!("{rows} customer rows, {:.1} MB of CSV", size as f64 / 1e6);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for target in common::targets(&dir, "import").await {
            settle();
            let floor = floor(&target.url, &csv, &dir);
            settle();
            let ours = import(&target.url, &csv).await;
            // after the import, so that its 1.6 GB of writes are not still being flushed
            // while the import runs
            let tables = if target.url.starts_with("sqlite:") {
                settle();
                Some(schema_floor(&dir, rows).await)
            } else {
                None
            };
            println!(
                "  ratio shoal / floor: {:.3}×   peak RSS so far {:.0} MB",
                floor / ours,
                peak_rss_mb()
            );
            if let Some(tables) = tables {
                println!(
                    "  ratio plain SQL into Shoal's tables / floor: {:.3}×   shoal / plain SQL into Shoal's tables: {:.2}×",
                    floor / tables,
                    tables / ours
                );
            }
            target.cleanup().await;
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Flushes what earlier steps wrote, so that no step pays for the one before it.
fn settle() {
    let _ = Command::new("sync").status();
}

/// The physical floor, in seconds: the database's own CSV loader into a plain table (no
/// checks, no indexes) — sqlite3's `.import`, or psql's `\copy` for PostgreSQL.
fn floor(url: &str, csv: &Path, dir: &Path) -> f64 {
    let rows = count_rows(csv);
    let started = Instant::now();
    let (name, out) = if url.starts_with("sqlite:") {
        let out = Command::new("sqlite3")
            .arg(dir.join("floor.db"))
            .arg("-cmd")
            .arg("CREATE TABLE raw (a TEXT, b TEXT, c TEXT, d TEXT, e TEXT, f TEXT)")
            .arg(format!(".import --csv --skip 1 {} raw", csv.display()))
            .output()
            .expect("the sqlite3 command-line shell (Debian package sqlite3)");
        ("sqlite3 .import", out)
    } else {
        let out = Command::new("psql")
            .arg(url)
            .arg("-q")
            .arg("-c")
            .arg("CREATE TABLE raw (a text, b text, c text, d text, e text, f text)")
            .arg("-c")
            .arg(format!(
                "\\copy raw FROM '{}' WITH (FORMAT csv, HEADER true)",
                csv.display()
            ))
            .output()
            .expect("psql");
        ("psql \\copy", out)
    };
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs = started.elapsed().as_secs_f64();
    println!(
        "  {name:<20} (plain table):    {secs:7.2} s  {:>9.0} rows/s",
        rows as f64 / secs
    );
    secs
}

/// The floor of Shoal's storage, in seconds: the rows `.import` put in `floor.db` written
/// by SQL alone (sqlite3, no Rust, no checks, no dedupe: every row a new customer) into a
/// migrated Shoal database — the customer with its six indexes, a contact row per phone,
/// email and email local part, the identity, the batch's one audit entry naming its
/// customers and rows (and, on each customer, the entry and its row) — in
/// transactions of the import's batch size, with the import connection's cache and
/// checkpoint settings. What Shoal's schema costs, before any of Shoal's code runs.
async fn schema_floor(dir: &Path, rows: usize) -> f64 {
    let file = dir.join("schema-floor.db");
    let db = common::open(&format!("sqlite://{}", file.display()), &common::config()).await;
    db.pool.close().await;
    let t = common::TENANT;
    let id = "printf('0193%012x-7000-8000-%012x', rowid, rowid)";
    let mut script = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -{}; \
         PRAGMA wal_autocheckpoint = {};\nATTACH '{}' AS r;\n",
        shoal_base::storage::BULK_CACHE_MIB * 1024,
        shoal_base::storage::BULK_WAL_PAGES,
        dir.join("floor.db").display()
    );
    let batch = import::DEFAULT_BATCH;
    for lo in (0..rows).step_by(batch) {
        let w = format!("rowid > {lo} AND rowid <= {}", lo + batch);
        let entry = format!("printf('0194%012x-7000-8000-%012x', {lo}, {lo})");
        script.push_str(&format!(
            "BEGIN IMMEDIATE;
INSERT INTO customers (tenant_id, id, display_name, name_key, phones, emails, attributes, lifecycle_stage, owner_id, source_channel, created_at, updated_at, version, stage_manual, import_entry, import_row)
 SELECT '{t}', {id}, a, lower(a), json_array('+86' || b), CASE WHEN c = '' THEN '[]' ELSE json_array(c) END,
 json_object('city', e, 'birthday', f), 'lead', NULL, 'import', 1764650000000000 + rowid, 1764650000000000 + rowid, 1, 0, {entry}, rowid FROM r.raw WHERE {w};
INSERT INTO customer_contacts SELECT '{t}', {id}, 'phone', '+86' || b FROM r.raw WHERE {w};
INSERT INTO customer_contacts SELECT '{t}', {id}, 'email', c FROM r.raw WHERE {w} AND c <> '';
INSERT INTO customer_contacts SELECT '{t}', {id}, 'email_local', substr(c, 1, instr(c, '@') - 1) FROM r.raw WHERE {w} AND c <> '';
INSERT INTO customer_identities (tenant_id, customer_id, channel, external_id, created_at) SELECT '{t}', {id}, 'store', d, 0 FROM r.raw WHERE {w};
INSERT INTO audit_log (tenant_id, id, at, actor_id, action, entity_type, entity_id, changes, request_id)
 SELECT '{t}', {entry}, 1764650000000000, 'admin', 'customer.import', 'import_job', '0193abc0-job',
 json_object('importJob', '0193abc0-job', 'created', json_group_array(json_object('customer', {id}, 'row', rowid)), 'merged', json_array()),
 'bench' FROM r.raw WHERE {w};
COMMIT;
"
        ));
    }
    let script_file = dir.join("schema-floor.sql");
    std::fs::write(&script_file, script).unwrap();
    let started = Instant::now();
    let out = Command::new("sqlite3")
        .arg(&file)
        .arg(format!(".read {}", script_file.display()))
        .output()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "plain SQL into Shoal's tables failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "  plain SQL into Shoal's tables (sqlite3): {secs:7.2} s  {:>9.0} rows/s",
        rows as f64 / secs
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("schema-floor.db{suffix}")));
    }
    secs
}

fn count_rows(csv: &Path) -> usize {
    std::fs::read(csv).map_or(0, |b| {
        b.iter().filter(|&&c| c == b'\n').count().saturating_sub(1)
    })
}

/// `shoal import` of the file into a fresh database; seconds.
async fn import(url: &str, csv: &Path) -> f64 {
    let config = common::config();
    let db = common::open(url, &config).await;
    let directory = Directory::from_config(&config, &db.vault);
    let actor = common::actor(&db, &directory).await;
    let request = Request {
        input: Input::File(csv.to_path_buf()),
        format: Format::Csv,
        mapping: MAPPING.into(),
        source_name: "bench".into(),
        dry_run: false,
        resume: None,
        batch_size: import::DEFAULT_BATCH,
        expect: None,
    };
    let started = Instant::now();
    let job = import::run(&db, &actor, None, &request, &mut Silent)
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let c = job.counts;
    println!(
        "  shoal import on {:<10}            {secs:7.2} s  {:>9.0} rows/s  created {} merged {} suggested {} rejected {}",
        db.backend.name(),
        c.rows_read as f64 / secs,
        c.created,
        c.merged,
        c.suggested,
        c.rejected
    );
    // duplicate detection over every customer again: candidates looked up by contact and
    // name, scored, suggestions kept (what "scan for duplicates" costs a tenant)
    let started = Instant::now();
    let scan = shoal_data::dedupe::suggestions::scan(&db, &actor)
        .await
        .unwrap();
    let scan_secs = started.elapsed().as_secs_f64();
    println!(
        "  dedupe scan on {:<10}             {scan_secs:7.2} s  {:>9.0} customers/s  new suggestions {}",
        db.backend.name(),
        scan.customers as f64 / scan_secs,
        scan.new_suggestions
    );
    db.pool.close().await;
    secs
}
