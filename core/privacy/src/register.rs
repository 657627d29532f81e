//! The register of personal data: every table with rows about a person.
//!
//! A table joins the register when it gains a column naming a customer (`customer_id`,
//! `survivor_id`, …) or a body that may carry personal values; the e2e test
//! `data_protection::the_register_covers_every_table_naming_a_customer` reads the live schema
//! of both backends and fails on a table missing here.

/// How a table's rows link to a person (the set of profile ids being exported or erased).
#[derive(Debug, Clone, Copy)]
pub enum Link {
    /// A column holding the customer id.
    Column(&'static str),
    /// Either of two columns (a pair: merge suggestions, merges).
    Either(&'static str, &'static str),
    /// A column holding the id of a row of `parent` whose `parent_column` holds the
    /// customer id (ticket entries through their ticket).
    Through {
        column: &'static str,
        parent: &'static str,
        parent_column: &'static str,
    },
    /// Audit entries about the customer (`entity_type = 'customer'`).
    AuditEntity,
    /// A text column that mentions the customer id (webhook payloads, delivery outcomes):
    /// no column names the customer, so the id is searched for.
    Mentions(&'static str),
}

/// What an erasure does to a linked row.
#[derive(Debug, Clone, Copy)]
pub enum OnErase {
    /// The row goes.
    Delete,
    /// Columns are set to SQL expressions, in which `:erased` is [`ERASED`], `:now` the time
    /// in microseconds and `:tombstone` the audit tombstone (`{"redacted":"erasure",…}`, the
    /// only change the audit log's trigger lets through); the row stays for counts, SLAs and
    /// statistics.
    Redact(&'static [(&'static str, &'static str)]),
    /// Kept unchanged, for the reason given (it holds no personal value beyond the
    /// pseudonymous customer id).
    Keep(&'static str),
}

/// One table of the register.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub name: &'static str,
    pub link: Link,
    pub on_erase: OnErase,
    /// Columns exported opened from their sealed form: `(column, sealed field)`.
    pub sealed: &'static [(&'static str, &'static str)],
    /// Columns left out of an export (blind indexes: meaningless to the person).
    pub hidden: &'static [&'static str],
}

const fn table(name: &'static str, link: Link, on_erase: OnErase) -> Table {
    Table {
        name,
        link,
        on_erase,
        sealed: &[],
        hidden: &[],
    }
}

/// The tombstone text an erasure writes in place of a personal value.
pub const ERASED: &str = "(erased)";

/// Every table holding personal data, in the order an erasure treats them (children before
/// the rows they hang on).
pub const TABLES: &[Table] = &[
    table(
        "ticket_entries",
        Link::Through {
            column: "ticket_id",
            parent: "tickets",
            parent_column: "customer_id",
        },
        OnErase::Redact(&[("body", ":erased"), ("detail", "'{}'")]),
    ),
    table(
        "ticket_surveys",
        Link::Through {
            column: "ticket_id",
            parent: "tickets",
            parent_column: "customer_id",
        },
        OnErase::Redact(&[("answers", "NULL")]),
    ),
    table(
        "tickets",
        Link::Column("customer_id"),
        OnErase::Redact(&[("subject", ":erased"), ("fields", "'{}'")]),
    ),
    table(
        "sop_step_runs",
        Link::Through {
            column: "enrolment_id",
            parent: "sop_enrolments",
            parent_column: "customer_id",
        },
        OnErase::Redact(&[("detail", "'{}'")]),
    ),
    table(
        "sop_enrolments",
        Link::Column("customer_id"),
        OnErase::Redact(&[
            ("trigger_info", "'{}'"),
            ("last_error", "NULL"),
            (
                "status",
                "CASE WHEN status IN ('active', 'paused', 'parked') THEN 'cancelled' ELSE status END",
            ),
            (
                "exit_reason",
                "CASE WHEN status IN ('active', 'paused', 'parked') THEN 'erased' ELSE exit_reason END",
            ),
            ("next_run_at", "NULL"),
            ("finished_at", "COALESCE(finished_at, :now)"),
        ]),
    ),
    table(
        "outbox_messages",
        Link::Column("customer_id"),
        OnErase::Redact(&[
            ("body", "'{}'"),
            ("target", "NULL"),
            (
                "last_error",
                "CASE WHEN status = 'pending' THEN 'customer erased' ELSE NULL END",
            ),
            (
                "status",
                "CASE WHEN status = 'pending' THEN 'failed' ELSE status END",
            ),
        ]),
    ),
    table(
        "tasks",
        Link::Column("customer_id"),
        OnErase::Redact(&[("title", ":erased")]),
    ),
    table("follow_ups", Link::Column("customer_id"), OnErase::Delete),
    table(
        "notifications",
        Link::Column("customer_id"),
        OnErase::Redact(&[("title", ":erased")]),
    ),
    table(
        "customer_watchers",
        Link::Column("customer_id"),
        OnErase::Delete,
    ),
    table(
        "campaign_recipients",
        Link::Column("customer_id"),
        OnErase::Keep("campaign statistics: status and variant under the pseudonymous id"),
    ),
    table(
        "bills",
        Link::Column("customer_id"),
        OnErase::Keep(
            "the books: amounts and settlement facts under the pseudonymous id, so statements and replays still balance",
        ),
    ),
    table(
        "contact_opt_outs",
        Link::Column("customer_id"),
        OnErase::Delete,
    ),
    table("consents", Link::Column("customer_id"), OnErase::Delete),
    table(
        "customer_tags",
        Link::Column("customer_id"),
        OnErase::Delete,
    ),
    table("tag_history", Link::Column("customer_id"), OnErase::Delete),
    table("customer_rfm", Link::Column("customer_id"), OnErase::Delete),
    table("rfm_history", Link::Column("customer_id"), OnErase::Delete),
    table(
        "stage_history",
        Link::Column("customer_id"),
        OnErase::Delete,
    ),
    table(
        "segment_members",
        Link::Column("customer_id"),
        OnErase::Delete,
    ),
    table(
        "internal_events",
        Link::Column("customer_id"),
        OnErase::Redact(&[("payload", "'{}'")]),
    ),
    table(
        "change_feed",
        Link::Column("customer_id"),
        OnErase::Redact(&[("payload", "'{}'")]),
    ),
    table(
        "hook_messages",
        Link::Mentions("payload"),
        OnErase::Redact(&[("payload", "'{}'")]),
    ),
    table(
        "inbound_deliveries",
        Link::Mentions("outcome"),
        OnErase::Redact(&[("body", "''")]),
    ),
    table("events", Link::Column("customer_id"), OnErase::Delete),
    Table {
        sealed: &[("reasons", "merge_suggestions.reasons")],
        ..table(
            "merge_suggestions",
            Link::Either("customer_a", "customer_b"),
            OnErase::Delete,
        )
    },
    Table {
        sealed: &[
            ("reason", "customer_merges.reason"),
            ("survivor_before", "customer_merges.survivor_before"),
            ("absorbed_before", "customer_merges.absorbed_before"),
            ("survivor_after", "customer_merges.survivor_after"),
            ("conflicts", "customer_merges.conflicts"),
            ("moved", "customer_merges.moved"),
        ],
        ..table(
            "customer_merges",
            Link::Either("survivor_id", "absorbed_id"),
            OnErase::Redact(&[
                ("reason", ":erased"),
                ("survivor_before", "'{}'"),
                ("absorbed_before", "'{}'"),
                ("survivor_after", "'{}'"),
                ("conflicts", "'[]'"),
                ("moved", "'{}'"),
            ]),
        )
    },
    Table {
        sealed: &[("changes", "audit_log.changes")],
        ..table(
            "audit_log",
            Link::AuditEntity,
            OnErase::Redact(&[("changes", ":tombstone")]),
        )
    },
    Table {
        hidden: &["value"],
        ..table(
            "customer_contacts",
            Link::Column("customer_id"),
            OnErase::Delete,
        )
    },
    Table {
        sealed: &[("external_id_sealed", "customer_identities.external_id")],
        hidden: &["external_id"],
        ..table(
            "customer_identities",
            Link::Column("customer_id"),
            OnErase::Delete,
        )
    },
    Table {
        sealed: &[
            ("phones", "customers.phones"),
            ("emails", "customers.emails"),
            ("attributes_sealed", "customers.attributes_sealed"),
        ],
        hidden: &["name_key"],
        ..table(
            "customers",
            Link::Column("id"),
            OnErase::Redact(&[
                ("display_name", ":erased"),
                ("name_key", "''"),
                ("phones", "'[]'"),
                ("emails", "'[]'"),
                ("attributes", "'{}'"),
                ("attributes_sealed", "NULL"),
                ("deleted_at", "COALESCE(deleted_at, :now)"),
                ("erased_at", ":now"),
                ("version", "version + 1"),
            ]),
        )
    },
];

/// Tables holding personal data that no column links to a person, and how they are bounded
/// instead (the schema test accepts them).
pub const UNLINKED: &[(&str, &str)] = &[
    (
        "import_errors",
        "values of rejected import rows, which became no customer: pruned by retention",
    ),
    (
        "erasures",
        "certificates: the erased customer's pseudonymous id, who and when, no personal value",
    ),
];

/// The table of the register called `name`.
pub fn get(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}
