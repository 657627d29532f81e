//! The pool hands out working connections: one the database dropped while it sat idle for
//! longer than [`TRUSTED_IDLE`] is checked and replaced before use, so the first request after
//! a database restart does not fail. PostgreSQL only (a SQLite connection cannot be cut from
//! outside); skipped, with a note, when it is unreachable.

use std::time::Duration;

use shoal_base::storage::{Db, TRUSTED_IDLE};
use sqlx::{Connection, Row};

fn postgres_url() -> String {
    std::env::var("SHOAL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn backend_pid(db: &Db) -> i32 {
    sqlx::query("SELECT pg_backend_pid() AS pid")
        .fetch_one(&db.pool)
        .await
        .expect("the pool hands out a working connection")
        .get("pid")
}

#[tokio::test]
async fn a_connection_the_database_dropped_while_idle_is_replaced() {
    let url = postgres_url();
    // one connection, so the next statement would get the same one back
    let Ok(db) = Db::connect(&url, 1).await else {
        eprintln!("PostgreSQL at {url} unreachable: skipped");
        return;
    };
    let before = backend_pid(&db).await;
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let cut: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(before)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(cut, "the pool's connection was terminated");
    tokio::time::sleep(TRUSTED_IDLE + Duration::from_millis(200)).await;
    let after = backend_pid(&db).await;
    assert_ne!(after, before, "a new connection replaced the dropped one");
}
