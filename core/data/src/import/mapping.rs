//! The field mapping of an import: which source column feeds which customer (or event)
//! field, with value maps, types and date formats. Written in TOML (see docs/import.md) and
//! read by hand rather than by serde, so that every mistake is reported with its key path
//! (`columns.phones.colum: unknown key`) and, once the header is known, with the columns the
//! file really has.

use std::collections::BTreeMap;

use toml::{Table, Value};

use shoal_base::kinds::Channel;

/// What an import creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Customers,
    Events,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customers => "customers",
            Kind::Events => "events",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "customers" => Some(Kind::Customers),
            "events" => Some(Kind::Events),
            _ => None,
        }
    }
}

/// How a cell is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Text,
    Integer,
    Decimal,
    Bool,
    /// Stored as `YYYY-MM-DD`.
    Date,
    /// A moment; naive values are read in the mapping's (or tenant's) time zone.
    DateTime,
}

impl ValueType {
    fn parse(s: &str) -> Option<ValueType> {
        Some(match s {
            "text" => ValueType::Text,
            "integer" => ValueType::Integer,
            "decimal" => ValueType::Decimal,
            "bool" => ValueType::Bool,
            "date" => ValueType::Date,
            "datetime" => ValueType::DateTime,
            _ => return None,
        })
    }
}

/// What to do with a value the value map does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped {
    /// Use the value as it is (the field's own checks still apply).
    Keep,
    /// Treat the cell as empty.
    Ignore,
    /// Reject the row.
    Reject,
}

/// Where a field's values come from and how they are read.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The key path in the mapping, for error messages (`columns.phones`).
    pub path: String,
    /// Source columns (header names), read in order; empty for a constant (`default`).
    pub columns: Vec<String>,
    pub map: BTreeMap<String, String>,
    pub unmapped: Unmapped,
    pub ty: ValueType,
    /// Formats (chrono `strftime`) tried in order for dates and times.
    pub formats: Vec<String>,
    /// Used when every column is empty.
    pub default: Option<String>,
    /// Splits one cell into several values (phones, emails, tags).
    pub split: Option<Vec<char>>,
    /// Prepended to the value (idempotency keys).
    pub prefix: String,
}

/// A customer field an import can fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    DisplayName,
    Phones,
    Emails,
    OwnerId,
    LifecycleStage,
    SourceChannel,
    Identity(Channel),
    Attribute(String),
    Tags,
    // events
    CustomerId,
    CustomerPhone,
    CustomerEmail,
    CustomerIdentity(Channel),
    EventType,
    EventName,
    OccurredAt,
    Amount,
    Currency,
    EventChannel,
    IdempotencyKey,
    Payload(String),
}

/// A parsed mapping file.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub kind: Kind,
    pub delimiter: u8,
    pub encoding: Option<&'static encoding_rs::Encoding>,
    pub sheet: Option<String>,
    /// 1-based row number of the header.
    pub header_row: u64,
    pub time_zone: Option<chrono_tz::Tz>,
    pub fields: Vec<(Target, Spec)>,
    /// Imported events start event-triggered SOPs as live ones do (default false: history
    /// does not message customers). Tags are re-evaluated either way, and tag changes act
    /// like live ones.
    pub trigger_automations: bool,
}

/// A mistake in a mapping: the key path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct MappingError {
    pub path: String,
    pub message: String,
}

fn err(path: &str, message: impl Into<String>) -> MappingError {
    MappingError {
        path: path.to_owned(),
        message: message.into(),
    }
}

const DATE_FORMATS: &[&str] = &["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "%Y%m%d"];
const DATETIME_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y年%m月%d日 %H:%M",
];
const LIST_SPLIT: &[char] = &[';', ',', '/', '、', '，', '；', '|'];

fn check_keys(table: &Table, path: &str, allowed: &[&str]) -> Result<(), MappingError> {
    for key in table.keys() {
        if !allowed.contains(&key.as_str()) {
            return Err(err(
                &join(path, key),
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn string(v: &Value, path: &str) -> Result<String, MappingError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        _ => Err(err(path, "must be a string")),
    }
}

fn table<'a>(v: &'a Value, path: &str) -> Result<&'a Table, MappingError> {
    v.as_table().ok_or_else(|| err(path, "must be a table"))
}

/// Reads a field spec: `"列名"`, `["列1", "列2"]` or `{ column = …, map = {…}, … }`.
fn spec(v: &Value, path: &str, ty: ValueType, list: bool) -> Result<Spec, MappingError> {
    let mut s = Spec {
        path: path.to_owned(),
        columns: Vec::new(),
        map: BTreeMap::new(),
        unmapped: Unmapped::Keep,
        ty,
        formats: Vec::new(),
        default: None,
        split: list.then(|| LIST_SPLIT.to_vec()),
        prefix: String::new(),
    };
    match v {
        Value::String(c) => s.columns.push(c.clone()),
        Value::Array(cols) => {
            for (i, c) in cols.iter().enumerate() {
                s.columns.push(string(c, &format!("{path}[{i}]"))?);
            }
        }
        Value::Table(t) => {
            check_keys(
                t,
                path,
                &[
                    "column", "columns", "map", "unmapped", "type", "formats", "default", "split",
                    "prefix",
                ],
            )?;
            if let Some(c) = t.get("column") {
                s.columns.push(string(c, &join(path, "column"))?);
            }
            if let Some(cs) = t.get("columns") {
                let arr = cs
                    .as_array()
                    .ok_or_else(|| err(&join(path, "columns"), "must be a list of column names"))?;
                for (i, c) in arr.iter().enumerate() {
                    s.columns.push(string(c, &format!("{path}.columns[{i}]"))?);
                }
            }
            if let Some(m) = t.get("map") {
                for (k, v) in table(m, &join(path, "map"))? {
                    s.map.insert(
                        k.trim().to_owned(),
                        string(v, &join(&join(path, "map"), k))?,
                    );
                }
            }
            if let Some(u) = t.get("unmapped") {
                s.unmapped = match string(u, &join(path, "unmapped"))?.as_str() {
                    "keep" => Unmapped::Keep,
                    "ignore" => Unmapped::Ignore,
                    "reject" => Unmapped::Reject,
                    other => {
                        return Err(err(
                            &join(path, "unmapped"),
                            format!("`{other}` is not one of keep, ignore, reject"),
                        ));
                    }
                };
            }
            if let Some(ty) = t.get("type") {
                let name = string(ty, &join(path, "type"))?;
                s.ty = ValueType::parse(&name).ok_or_else(|| {
                    err(
                        &join(path, "type"),
                        format!(
                            "`{name}` is not one of text, integer, decimal, bool, date, datetime"
                        ),
                    )
                })?;
            }
            if let Some(f) = t.get("formats") {
                let arr = f.as_array().ok_or_else(|| {
                    err(
                        &join(path, "formats"),
                        "must be a list of formats such as \"%Y/%m/%d\"",
                    )
                })?;
                for (i, f) in arr.iter().enumerate() {
                    let at = format!("{path}.formats[{i}]");
                    let f = string(f, &at)?;
                    if chrono::format::StrftimeItems::new(&f)
                        .any(|i| matches!(i, chrono::format::Item::Error))
                    {
                        return Err(err(&at, format!("`{f}` is not a valid date format")));
                    }
                    s.formats.push(f);
                }
            }
            if let Some(d) = t.get("default") {
                s.default = Some(string(d, &join(path, "default"))?);
            }
            if let Some(sp) = t.get("split") {
                let sp = string(sp, &join(path, "split"))?;
                s.split = (!sp.is_empty()).then(|| sp.chars().collect());
            }
            if let Some(p) = t.get("prefix") {
                s.prefix = string(p, &join(path, "prefix"))?;
            }
            if s.columns.is_empty() && s.default.is_none() {
                return Err(err(path, "give `column` (or `columns`) or a `default`"));
            }
        }
        _ => {
            return Err(err(
                path,
                "must be a column name, a list of column names, or a table",
            ));
        }
    }
    if s.formats.is_empty() {
        let defaults: &[&str] = match s.ty {
            ValueType::Date => DATE_FORMATS,
            ValueType::DateTime => DATETIME_FORMATS,
            _ => &[],
        };
        s.formats = defaults.iter().map(|f| f.to_string()).collect();
        if s.ty == ValueType::DateTime {
            s.formats.extend(DATE_FORMATS.iter().map(|f| f.to_string()));
        }
    }
    Ok(s)
}

fn channel(name: &str, path: &str) -> Result<Channel, MappingError> {
    Channel::parse(name).ok_or_else(|| {
        err(path, format!("`{name}` is not a channel (wechat, wecom, shop, store, web, app, phone, import, other)"))
    })
}

/// Parses a mapping file's text.
pub fn parse(text: &str) -> Result<Mapping, MappingError> {
    let root: Table =
        toml::from_str(text).map_err(|e| err("", format!("not valid TOML: {}", e.message())))?;
    let kind_name = root
        .get("kind")
        .map(|k| string(k, "kind"))
        .transpose()?
        .unwrap_or_else(|| "customers".into());
    let kind = Kind::parse(&kind_name).ok_or_else(|| {
        err(
            "kind",
            format!("`{kind_name}` is not `customers` or `events`"),
        )
    })?;
    let sections: &[&str] = match kind {
        Kind::Customers => &[
            "kind",
            "source",
            "columns",
            "identities",
            "attributes",
            "tags",
            "options",
        ],
        Kind::Events => &[
            "kind", "source", "customer", "columns", "payload", "options",
        ],
    };
    check_keys(&root, "", sections)?;
    let mut m = Mapping {
        kind,
        delimiter: b',',
        encoding: None,
        sheet: None,
        header_row: 1,
        time_zone: None,
        fields: Vec::new(),
        trigger_automations: false,
    };
    if let Some(src) = root.get("source") {
        let t = table(src, "source")?;
        check_keys(
            t,
            "source",
            &["delimiter", "encoding", "sheet", "header_row", "time_zone"],
        )?;
        if let Some(d) = t.get("delimiter") {
            let d = string(d, "source.delimiter")?;
            let d = if d == "\\t" { "\t".to_owned() } else { d };
            m.delimiter = match d.as_bytes() {
                [b] if b.is_ascii() => *b,
                _ => {
                    return Err(err(
                        "source.delimiter",
                        "one ASCII character, e.g. \",\", \";\" or \"\\t\"",
                    ));
                }
            };
        }
        if let Some(e) = t.get("encoding") {
            let name = string(e, "source.encoding")?;
            m.encoding = Some(
                encoding_rs::Encoding::for_label(name.as_bytes()).ok_or_else(|| {
                    err(
                        "source.encoding",
                        format!("`{name}` is not a known encoding (utf-8, gbk, gb18030, big5, …)"),
                    )
                })?,
            );
        }
        if let Some(s) = t.get("sheet") {
            m.sheet = Some(string(s, "source.sheet")?);
        }
        if let Some(h) = t.get("header_row") {
            m.header_row = h
                .as_integer()
                .filter(|n| *n >= 1)
                .ok_or_else(|| err("source.header_row", "a row number from 1"))?
                as u64;
        }
        if let Some(z) = t.get("time_zone") {
            let name = string(z, "source.time_zone")?;
            m.time_zone = Some(name.parse().map_err(|_| {
                err(
                    "source.time_zone",
                    format!("`{name}` is not an IANA time zone such as Asia/Shanghai"),
                )
            })?);
        }
    }
    if let Some(o) = root.get("options") {
        let t = table(o, "options")?;
        check_keys(t, "options", &["trigger_automations"])?;
        if let Some(v) = t.get("trigger_automations") {
            m.trigger_automations = v
                .as_bool()
                .ok_or_else(|| err("options.trigger_automations", "true or false"))?;
        }
    }
    match kind {
        Kind::Customers => customers(&root, &mut m)?,
        Kind::Events => events(&root, &mut m)?,
    }
    Ok(m)
}

fn customers(root: &Table, m: &mut Mapping) -> Result<(), MappingError> {
    if let Some(cols) = root.get("columns") {
        let t = table(cols, "columns")?;
        check_keys(
            t,
            "columns",
            &[
                "display_name",
                "phones",
                "emails",
                "owner_id",
                "lifecycle_stage",
                "source_channel",
            ],
        )?;
        for (key, v) in t {
            let path = join("columns", key);
            let (target, list) = match key.as_str() {
                "display_name" => (Target::DisplayName, false),
                "phones" => (Target::Phones, true),
                "emails" => (Target::Emails, true),
                "owner_id" => (Target::OwnerId, false),
                "lifecycle_stage" => (Target::LifecycleStage, false),
                _ => (Target::SourceChannel, false),
            };
            m.fields
                .push((target, spec(v, &path, ValueType::Text, list)?));
        }
    }
    if let Some(ids) = root.get("identities") {
        for (name, v) in table(ids, "identities")? {
            let path = join("identities", name);
            m.fields.push((
                Target::Identity(channel(name, &path)?),
                spec(v, &path, ValueType::Text, false)?,
            ));
        }
    }
    if let Some(attrs) = root.get("attributes") {
        for (name, v) in table(attrs, "attributes")? {
            let path = join("attributes", name);
            shoal_base::kinds::attribute_key(name).map_err(|e| err(&path, e))?;
            m.fields.push((
                Target::Attribute(name.clone()),
                spec(v, &path, ValueType::Text, false)?,
            ));
        }
    }
    if let Some(tags) = root.get("tags") {
        let list = tags
            .as_array()
            .ok_or_else(|| err("tags", "must be a list of tables ([[tags]])"))?;
        for (i, v) in list.iter().enumerate() {
            let path = format!("tags[{i}]");
            let mut s = spec(v, &path, ValueType::Text, true)?;
            if !matches!(v, Value::Table(t) if t.contains_key("split")) {
                s.split = Some(LIST_SPLIT.to_vec());
            }
            m.fields.push((Target::Tags, s));
        }
    }
    if !m.fields.iter().any(|(t, _)| *t == Target::DisplayName) {
        return Err(err(
            "columns.display_name",
            "required: the column holding the customer's name (or a `default`)",
        ));
    }
    Ok(())
}

fn events(root: &Table, m: &mut Mapping) -> Result<(), MappingError> {
    let who = root.get("customer").ok_or_else(|| err("customer", "required: how a row finds its customer (id, phone, email or a channel's identity column)"))?;
    for (key, v) in table(who, "customer")? {
        let path = join("customer", key);
        let target = match key.as_str() {
            "id" => Target::CustomerId,
            "phone" => Target::CustomerPhone,
            "email" => Target::CustomerEmail,
            other => Target::CustomerIdentity(channel(other, &path)?),
        };
        m.fields
            .push((target, spec(v, &path, ValueType::Text, false)?));
    }
    let cols = root
        .get("columns")
        .ok_or_else(|| err("columns", "required: at least `type` and `occurred_at`"))?;
    let t = table(cols, "columns")?;
    check_keys(
        t,
        "columns",
        &[
            "type",
            "name",
            "occurred_at",
            "amount",
            "currency",
            "channel",
            "idempotency_key",
        ],
    )?;
    for (key, v) in t {
        let path = join("columns", key);
        let (target, ty) = match key.as_str() {
            "type" => (Target::EventType, ValueType::Text),
            "name" => (Target::EventName, ValueType::Text),
            "occurred_at" => (Target::OccurredAt, ValueType::DateTime),
            "amount" => (Target::Amount, ValueType::Decimal),
            "currency" => (Target::Currency, ValueType::Text),
            "channel" => (Target::EventChannel, ValueType::Text),
            _ => (Target::IdempotencyKey, ValueType::Text),
        };
        m.fields.push((target, spec(v, &path, ty, false)?));
    }
    for required in [Target::EventType, Target::OccurredAt] {
        if !m.fields.iter().any(|(t, _)| *t == required) {
            let name = if required == Target::EventType {
                "type"
            } else {
                "occurred_at"
            };
            return Err(err(&join("columns", name), "required"));
        }
    }
    if let Some(p) = root.get("payload") {
        for (name, v) in table(p, "payload")? {
            let path = join("payload", name);
            m.fields.push((
                Target::Payload(name.clone()),
                spec(v, &path, ValueType::Text, false)?,
            ));
        }
    }
    Ok(())
}

impl Mapping {
    /// Every column the mapping names that `header` lacks, as mapping errors listing the
    /// columns the file has.
    pub fn check_header(&self, header: &[String]) -> Result<(), Vec<MappingError>> {
        let mut problems = Vec::new();
        for (_, spec) in &self.fields {
            for c in &spec.columns {
                if !header.iter().any(|h| h == c) {
                    problems.push(err(
                        &spec.path,
                        format!(
                            "no column `{c}` in the file (it has: {})",
                            header.join(", ")
                        ),
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(text: &str, path: &str, message_part: &str) {
        let e = parse(text).expect_err(text);
        assert_eq!(e.path, path, "{e}");
        assert!(
            e.message.contains(message_part),
            "`{e}` should say `{message_part}`"
        );
    }

    #[test]
    fn a_customer_mapping_reads_shorthands_and_tables() {
        let m = parse(
            r#"
            [source]
            encoding = "gbk"
            [columns]
            display_name = "姓名"
            phones = ["手机", "电话"]
            lifecycle_stage = { column = "客户类型", map = { "VIP客户" = "loyal" }, unmapped = "ignore" }
            [identities]
            wecom = "企微ID"
            [attributes]
            birthday = { column = "生日", type = "date", formats = ["%Y年%m月%d日"] }
            [[tags]]
            column = "客户类型"
            map = { "VIP客户" = "VIP" }
            unmapped = "ignore"
            "#,
        )
        .unwrap();
        assert_eq!(m.kind, Kind::Customers);
        assert_eq!(m.encoding, Some(encoding_rs::GBK));
        assert_eq!(m.fields.len(), 6);
        let (_, phones) = m.fields.iter().find(|(t, _)| *t == Target::Phones).unwrap();
        assert_eq!(phones.columns, ["手机", "电话"]);
        assert!(phones.split.is_some());
        let (_, stage) = m
            .fields
            .iter()
            .find(|(t, _)| *t == Target::LifecycleStage)
            .unwrap();
        assert_eq!(stage.map.get("VIP客户").map(String::as_str), Some("loyal"));
        assert_eq!(stage.unmapped, Unmapped::Ignore);
        let (_, birthday) = m
            .fields
            .iter()
            .find(|(t, _)| *t == Target::Attribute("birthday".into()))
            .unwrap();
        assert_eq!(birthday.ty, ValueType::Date);
        assert!(
            m.fields
                .iter()
                .any(|(t, _)| *t == Target::Identity(Channel::Wecom))
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        check_err(
            "[columns]\ndisplay_name = \"n\"\nphone = \"p\"\n",
            "columns.phone",
            "unknown key",
        );
        check_err(
            "[columns]\nphones = \"p\"\n",
            "columns.display_name",
            "required",
        );
        check_err(
            "[columns]\ndisplay_name = { colum = \"n\" }\n",
            "columns.display_name.colum",
            "unknown key",
        );
        check_err(
            "[columns]\ndisplay_name = \"n\"\n[identities]\nweixin = \"w\"\n",
            "identities.weixin",
            "not a channel",
        );
        check_err(
            "[columns]\ndisplay_name = \"n\"\n[attributes]\nb = { column = \"b\", type = \"day\" }\n",
            "attributes.b.type",
            "not one of",
        );
        check_err("kind = \"orders\"\n", "kind", "not `customers` or `events`");
        check_err(
            "kind = \"events\"\n[customer]\nid = \"c\"\n[columns]\ntype = \"t\"\n",
            "columns.occurred_at",
            "required",
        );
        check_err(
            "[source]\ndelimiter = \"ab\"\n",
            "source.delimiter",
            "one ASCII character",
        );
        check_err(
            "[source]\ntime_zone = \"Mars/Base\"\n",
            "source.time_zone",
            "IANA",
        );
    }

    #[test]
    fn missing_columns_are_named_with_the_ones_the_file_has() {
        let m = parse("[columns]\ndisplay_name = \"姓名\"\nphones = \"手机\"\n").unwrap();
        let errors = m.check_header(&["姓名".into(), "电话".into()]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "columns.phones");
        assert!(
            errors[0].message.contains("it has: 姓名, 电话"),
            "{}",
            errors[0]
        );
    }
}
