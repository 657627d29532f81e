//! The typed syntax tree of a rule, produced by `parse` + `check`.

use shoal_base::kinds::EventType;

/// A position in the rule text (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

/// Which events an aggregate looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub event_type: EventType,
    /// For custom events: which one.
    pub name: Option<String>,
}

/// A boolean condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    /// `count(…) >= 3`, `days_since(order) > 30`, `sum(order, 90d) >= 1000`.
    Compare(Num, Op, Num),
    /// `exists(order, 30d)`.
    Exists(EventFilter, Option<i64>),
    /// `has_tag("VIP")`, resolved to the tag's id.
    HasTag {
        name: String,
        id: String,
    },
    /// `stage = customer`, `stage in [customer, loyal]`.
    StageIn(Vec<String>, bool),
    /// `channel in [wecom, shop]`.
    ChannelIn(Vec<String>, bool),
    /// `attr.city = "北京"`, `attr.vip = true`, `attr.age >= 30`, `attr.city in [...]`.
    Attr {
        key: String,
        test: AttrTest,
    },
    Bool(bool),
}

/// A comparison on one attribute's JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrTest {
    /// Equal to one of these strings (`negated`: none of them).
    StrIn(Vec<String>, bool),
    Num(Op, f64),
    Bool(bool, bool),
}

/// A number-valued expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Num {
    /// Number of events in the window (seconds), or ever.
    Count(EventFilter, Option<i64>),
    /// Sum of amounts (in 10⁻⁴ units) in the window.
    SumUnits(EventFilter, Option<i64>),
    /// Whole days since the latest event (none: unknown).
    DaysSince(EventFilter),
    /// Whole days since the customer was created.
    DaysSinceCreated,
    /// A literal: a whole number, or (compared with a sum) 10⁻⁴ units.
    Lit(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }

    /// The same comparison with its sides swapped (`k < x` is `x > k`).
    pub fn flipped(self) -> Op {
        match self {
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            other => other,
        }
    }

    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
        }
    }
}

/// A checked rule, ready for either evaluator.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub cond: Cond,
    /// Tag ids the rule refers to (for dependency checks).
    pub tag_refs: Vec<String>,
}

impl Cond {
    /// The attribute keys the condition reads (`attr.income > 5` → `income`), for the
    /// permission check that filtering does not reveal a hidden field.
    pub fn attributes_read(&self) -> Vec<&str> {
        match self {
            Cond::And(a, b) | Cond::Or(a, b) => {
                let mut keys = a.attributes_read();
                keys.extend(b.attributes_read());
                keys
            }
            Cond::Not(a) => a.attributes_read(),
            Cond::Attr { key, .. } => vec![key.as_str()],
            _ => Vec::new(),
        }
    }
}
