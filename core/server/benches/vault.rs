//! The primitives of sealing at rest (docs/data-protection.md), per value, in memory:
//! sealing and opening a profile's phone list (AES-256-GCM), a blind index (HMAC-SHA-256),
//! and the JSON encoding the unsealed column costs anyway — the floor beside them.
//!
//! `cargo xtask bench --bench vault`

use std::time::Instant;

mod common;

const N: u32 = 200_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("shoal-bench-vault-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/vault.db", dir.display());
        let config = common::config();
        let db = common::open(&url, &config).await;
        let list = serde_json::json!(["+8613812345678"]).to_string();
        let time = |what: &str, f: &mut dyn FnMut(u32)| {
            let start = Instant::now();
            for i in 0..N {
                f(i);
            }
            let per = start.elapsed() / N;
            println!("{what:<44} {per:>10.2?} per value");
            per
        };
        let json = time("floor: JSON encode + decode of the list", &mut |_| {
            let v: Vec<String> = serde_json::from_str(&list).unwrap();
            std::hint::black_box(serde_json::to_string(&v).unwrap());
        });
        let sealed = db.vault.seal("bench", "customers.phones", &list).unwrap();
        let seal = time("seal (AES-256-GCM, random nonce)", &mut |_| {
            std::hint::black_box(db.vault.seal("bench", "customers.phones", &list).unwrap());
        });
        let open = time("open", &mut |_| {
            std::hint::black_box(db.vault.unseal("bench", "customers.phones", &sealed).unwrap());
        });
        let index = time("blind index (HMAC-SHA-256)", &mut |i| {
            std::hint::black_box(db.vault.index("bench", "phone", &format!("+86138{i:08}")).unwrap());
        });
        println!(
            "a profile written (2 seals + 3 indexes): {:.2?}; read (2 opens): {:.2?}; JSON floor {:.2?}",
            seal * 2 + index * 3,
            open * 2,
            json
        );
        common::report_peak_memory("vault");
        let _ = std::fs::remove_dir_all(&dir);
    });
}
