//! Closed vocabularies shared by storage and the API: stored as snake_case text, exposed
//! as GraphQL enums (the one place where a domain type derives a GraphQL trait, behind the
//! `graphql` feature that only `shoal-api` turns on, so that the vocabulary is written once),
//! and the rule for attribute names every vocabulary of attributes shares.

/// Defines a string-backed enum with `as_str` / `parse`.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "graphql", derive(async_graphql::Enum))]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

vocabulary! {
    /// Where a customer stands in the relationship.
    LifecycleStage {
        /// Known contact, no qualified interest yet.
        Lead = "lead",
        /// Showed buying interest (consulted, trialled, visited).
        Prospect = "prospect",
        /// Bought at least once.
        Customer = "customer",
        /// Buys repeatedly.
        Loyal = "loyal",
        /// No activity for a long time.
        Dormant = "dormant",
        /// Gone (unsubscribed, refunded out, long dormant).
        Churned = "churned",
    }
}

vocabulary! {
    /// A channel through which customers arrive and interact.
    Channel {
        /// WeChat official account / mini program (identity: unionid or openid).
        Wechat = "wechat",
        /// WeCom (企业微信) contact (identity: external_userid).
        Wecom = "wecom",
        /// Online shop (identity: buyer id).
        Shop = "shop",
        /// Physical store (identity: member number).
        Store = "store",
        /// Website.
        Web = "web",
        /// Mobile app.
        App = "app",
        /// Phone call centre.
        Phone = "phone",
        /// Bulk import from files.
        Import = "import",
        Other = "other",
    }
}

vocabulary! {
    /// What happened on a customer's timeline.
    EventType {
        Order = "order",
        Refund = "refund",
        PageView = "page_view",
        Consult = "consult",
        MessageIn = "message_in",
        MessageOut = "message_out",
        Visit = "visit",
        CouponUsed = "coupon_used",
        /// A tenant-defined event; its `name` says which.
        Custom = "custom",
    }
}

impl EventType {
    /// Events that move money carry an amount.
    pub fn requires_amount(self) -> bool {
        matches!(self, EventType::Order | EventType::Refund)
    }
}

vocabulary! {
    /// A standard RFM segment, from recency (R), frequency (F) and monetary (M) quintile
    /// scores 1–5 (see docs/tags.md for the table).
    RfmCell {
        /// Bought recently, often, and spent the most.
        Champions = "champions",
        /// Buy often; still recent.
        Loyal = "loyal",
        /// Recent, with a few orders: could become loyal.
        PotentialLoyalist = "potential_loyalist",
        /// Their first order was very recent.
        NewCustomers = "new_customers",
        /// Recent first-time buyers.
        Promising = "promising",
        /// Middling on everything.
        NeedAttention = "need_attention",
        /// Fading and infrequent.
        AboutToSleep = "about_to_sleep",
        /// Used to buy often and much; gone quiet for long.
        CannotLose = "cannot_lose",
        /// Used to buy often; not recently.
        AtRisk = "at_risk",
        /// Long ago, rarely.
        Hibernating = "hibernating",
        /// Long ago, once.
        Lost = "lost",
    }
}

vocabulary! {
    /// A kind of row that data scopes restrict (see docs/permissions.md).
    Resource {
        Customers = "customers",
        /// Timeline events, scoped by their customer.
        Events = "events",
        /// Follow-up records, scoped by their customer.
        FollowUps = "follow_ups",
        /// Tasks, scoped by their assignee (and, for stage grants, their customer).
        Tasks = "tasks",
        /// Tickets (work orders), scoped by their customer.
        Tickets = "tickets",
        /// Bills, scoped by their customer; bills without a customer need scope `all`.
        Bills = "bills",
    }
}

vocabulary! {
    /// Which rows of a resource a role reaches, by the owner of the row's customer (or the
    /// assignee of a task).
    ScopeKind {
        /// Nothing.
        None = "none",
        /// Rows the user owns.
        Own = "own",
        /// Rows owned by anyone in the user's department.
        Department = "department",
        /// Rows owned by anyone in the user's department or the departments below it.
        Subtree = "subtree",
        /// Rows owned by anyone in the role's listed departments or below them.
        Departments = "departments",
        /// Every row of the tenant, including customers nobody owns.
        All = "all",
    }
}

vocabulary! {
    /// How a field reads for a role.
    Visibility {
        Visible = "visible",
        /// Partly shown: phone `138****5678`, email `z***@example.com`, text `张**`.
        Masked = "masked",
        /// Left out (empty list, missing attribute, `***` for a name).
        Hidden = "hidden",
    }
}

impl Visibility {
    /// The more revealing of two rules (a user with several roles gets the most any gives).
    pub fn most(self, other: Visibility) -> Visibility {
        let rank = |v: Visibility| match v {
            Visibility::Hidden => 0,
            Visibility::Masked => 1,
            Visibility::Visible => 2,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

vocabulary! {
    /// Something a role may do beyond reading what its scopes reach.
    Action {
        /// Create customers, record events, follow-ups and tasks.
        Create = "create",
        /// Change customers, tasks, contact preferences and enrolments.
        Update = "update",
        Delete = "delete",
        /// Change a customer's owner; hand customers over.
        Assign = "assign",
        /// Export customers or statements.
        Export = "export",
        /// Message or enrol many customers at once (a segment, a filter, a list).
        BulkMessage = "bulk_message",
        /// Settle and refund bills.
        Settle = "settle",
        /// Define tags, segments, SOPs and price libraries.
        Configure = "configure",
        /// Read the audit log.
        Audit = "audit",
        /// Manage users, departments, roles and plugins.
        Administer = "administer",
    }
}

/// Longest attribute name, in characters.
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;

/// Checks an attribute name (of a customer, a rule, a role's field rule): 1–64 characters,
/// no quotes, backslashes or control characters.
///
/// ```
/// use shoal_base::kinds::attribute_key;
/// assert!(attribute_key("会员等级").is_ok());
/// assert!(attribute_key("bad\"key").is_err());
/// ```
pub fn attribute_key(key: &str) -> Result<(), String> {
    let n = key.chars().count();
    if n == 0 || n > MAX_ATTRIBUTE_KEY_CHARS {
        return Err(format!(
            "attribute names are 1–{MAX_ATTRIBUTE_KEY_CHARS} characters"
        ));
    }
    if key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(
            "attribute names must not contain quotes, backslashes or control characters".into(),
        );
    }
    Ok(())
}
