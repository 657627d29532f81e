//! A loopback HTTP load run against `shoal serve --demo` built in release — SQLite, the
//! demo's customers, the four industry modules loaded — with nothing between the two but a
//! socket: the server's resident memory idle, then requests per second and latency
//! percentiles at 16 connections (each its own keep-alive connection, one request at a time)
//! for a customers list page (100 customers with their tags), one customer, and
//! `recordEvents` (one event per request, then batches of 100), how long those events
//! waited for the dispatcher to evaluate their customers (median and p99), and the server's
//! peak memory after.
//!
//! Run with `cargo xtask bench --bench http`: xtask builds and signs the industry modules as
//! `cargo xtask run` does and passes their folder and the key that trusts them.
//! `SHOAL_BENCH_SERVER=<path>` runs another build of `shoal` instead (an earlier commit's,
//! to compare).

use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Full};
use hyper::{Request, body::Bytes, client::conn::http1};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

mod common;

const CONNECTIONS: usize = 16;
const RUN: Duration = Duration::from_secs(10);
const KEY: &str = "demo_load_bench_key_0001";

#[tokio::main]
async fn main() {
    let Some(modules) = std::env::var_os("SHOAL_PLUGINS__DIR") else {
        eprintln!("http: run with `cargo xtask bench --bench http` (it builds the modules)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("shoal-http-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let addr = free_address();
    let mut server = Server::start(&dir, addr, Path::new(&modules));
    let client = Client { addr };
    ready(&client, &mut server.child).await;
    // the demo data and the modules are in; let the host's loops settle before reading
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = server.memory();
    println!(
        "shoal serve --demo (SQLite, 4 modules), idle: RSS {:.1} MiB (peak so far {:.1} MiB)",
        idle.0, idle.1
    );

    let ids: Vec<String> = client
        .graphql(
            "{ customers(first: 100) { edges { node { id } } } }",
            json!({}),
        )
        .await["customers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 100, "the demo has customers");
    let ids = std::sync::Arc::new(ids);

    println!(
        "{:<28} {:>10} {:>10} {:>10} {:>10} {:>12}",
        "request (16 connections)", "requests", "req/s", "p50", "p99", "events/s"
    );
    let list = "query { customers(first: 100) { edges { node { id displayName phones emails lifecycleStage sourceChannel createdAt tags { tag { name } } } } } }";
    run(&client, "customers(first: 100)", 0, move |_, _| {
        (list.to_owned(), json!({}))
    })
    .await;
    let some = ids.clone();
    run(&client, "customer(id)", 0, move |conn, i| {
        (
            "query($id: ID!) { customer(id: $id) { id displayName phones emails attributes lifecycleStage tags { tag { name } } } }".to_owned(),
            json!({ "id": some[(conn * 7 + i) % some.len()] }),
        )
    })
    .await;
    let record =
        "mutation($input: [RecordEventInput!]!) { recordEvents(input: $input) { createdCount } }";
    let recording_from = chrono::Utc::now().timestamp_micros();
    for n in [1, 100] {
        let ids = ids.clone();
        run(
            &client,
            &format!("recordEvents ({n} per request)"),
            n,
            move |conn, i| {
                (
                    record.to_owned(),
                    json!({ "input": events(&ids, conn, i, n) }),
                )
            },
        )
        .await;
    }

    evaluation_lag(&dir.join("data/shoal.db"), recording_from).await;

    let after = server.memory();
    println!(
        "after the load: RSS {:.1} MiB, peak {:.1} MiB",
        after.0, after.1
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// How long the recorded events waited for their customers' evaluation (stage, tags,
/// modules), read from the server's database once the dispatcher has taken them all: from
/// the event's commit (its internal event's `at`) to the dispatch transaction that took it
/// (`dispatched_at`, stamped when the batch is taken), and, as an upper bound of the commit
/// of that evaluation, to the next batch's stamp (the tenant's loop takes batches one after
/// another while there is work).
async fn evaluation_lag(db: &Path, from: i64) {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30));
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let started = Instant::now();
    loop {
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM internal_events WHERE kind = 'event.recorded' AND dispatched_at IS NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if pending == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "{pending} events still not evaluated after ten minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained = started.elapsed();
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT at, dispatched_at FROM internal_events WHERE kind = 'event.recorded' AND at >= ?",
    )
    .bind(from)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut stamps: Vec<i64> = rows.iter().map(|r| r.1).collect();
    stamps.sort_unstable();
    stamps.dedup();
    let micros = |m: i64| Duration::from_micros(m.max(0) as u64);
    let mut taken: Vec<Duration> = rows.iter().map(|(at, d)| micros(d - at)).collect();
    // the last batch has no next stamp: it is left out of the upper bound
    let mut done: Vec<Duration> = rows
        .iter()
        .filter_map(|(at, d)| {
            let next = stamps.partition_point(|s| s <= d);
            stamps.get(next).map(|n| micros(n - at))
        })
        .collect();
    taken.sort();
    done.sort();
    let at = |v: &[Duration], p: f64| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2?}", common::percentile(v, p))
        }
    };
    println!(
        "evaluation lag of {} events ({} dispatch batches; {:.1?} to drain after the load): \
         commit → taken p50 {} p99 {}; → next batch (upper bound of applied) p50 {} p99 {}",
        rows.len(),
        stamps.len(),
        drained,
        at(&taken, 0.5),
        at(&taken, 0.99),
        at(&done, 0.5),
        at(&done, 0.99),
    );
}

/// `n` page views of the demo's customers, now.
fn events(ids: &[String], conn: usize, i: usize, n: usize) -> Value {
    (0..n)
        .map(|k| {
            json!({
                "customerId": ids[(conn * 13 + i * n + k) % ids.len()],
                "type": "PAGE_VIEW",
                "occurredAt": chrono::Utc::now().to_rfc3339(),
                "payload": { "page": "/活动/双十一" },
            })
        })
        .collect()
}

/// One scenario: `CONNECTIONS` connections send `request(connection, i)` one after another
/// for `RUN`; every answer must be a 200 without GraphQL errors.
async fn run(
    client: &Client,
    name: &str,
    events_per_request: usize,
    request: impl Fn(usize, usize) -> (String, Value) + Clone + Send + Sync + 'static,
) {
    let deadline = Instant::now() + RUN;
    let mut tasks = Vec::new();
    for conn in 0..CONNECTIONS {
        let (client, request) = (client.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = client.connect().await;
            let mut times = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline {
                let (query, variables) = request(conn, i);
                let started = Instant::now();
                let data = Client::send(&mut sender, &query, variables).await;
                times.push(started.elapsed());
                assert!(data.is_object());
                i += 1;
            }
            times
        }));
    }
    let started = Instant::now();
    let mut times = Vec::new();
    for t in tasks {
        times.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    times.sort();
    let rate = times.len() as f64 / secs;
    println!(
        "{name:<28} {:>10} {:>10.0} {:>10.2?} {:>10.2?} {:>12}",
        times.len(),
        rate,
        common::percentile(&times, 0.5),
        common::percentile(&times, 0.99),
        if events_per_request > 0 {
            format!("{:.0}", rate * events_per_request as f64)
        } else {
            "-".into()
        }
    );
}

#[derive(Clone)]
struct Client {
    addr: SocketAddr,
}

type Sender = http1::SendRequest<Full<Bytes>>;

impl Client {
    async fn connect(&self) -> Sender {
        let stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(connection);
        sender
    }

    /// One request on a connection of its own.
    async fn graphql(&self, query: &str, variables: Value) -> Value {
        Client::send(&mut self.connect().await, query, variables).await
    }

    async fn send(sender: &mut Sender, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let request = Request::post("/graphql")
            .header("host", "127.0.0.1")
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {KEY}"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        sender.ready().await.unwrap();
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "{status}: not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert!(
            status.is_success() && answer.get("errors").is_none(),
            "{status}: {answer}"
        );
        answer["data"].take()
    }
}

/// Waits (up to two minutes) until the server answers a GraphQL query as the demo tenant.
async fn ready(client: &Client, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("shoal serve exited: {status}");
        }
        if tokio::net::TcpStream::connect(client.addr).await.is_ok() {
            client
                .graphql(
                    "{ customers(first: 1) { edges { node { id } } } }",
                    json!({}),
                )
                .await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("shoal serve did not answer within two minutes");
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `shoal serve --demo`, release, in a folder of its own; killed when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(dir: &Path, addr: SocketAddr, modules: &Path) -> Server {
        // another build of the server (an earlier commit's, to compare) if named
        let binary = std::env::var("SHOAL_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_shoal").to_owned());
        let child = Command::new(binary)
            .args(["serve", "--demo"])
            .current_dir(dir)
            .env("SHOAL_SERVER__BIND", addr.to_string())
            .env("SHOAL_PLUGINS__DIR", modules)
            .env("SHOAL_DEMO_API_KEY", KEY)
            .env("SHOAL_LOG__LEVEL", "warn")
            .spawn()
            .unwrap();
        Server { child }
    }

    /// Resident and peak resident memory, in MiB.
    fn memory(&self) -> (f64, f64) {
        let m = common::memory_of(self.child.id());
        (m.rss_mb, m.peak_rss_mb)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
