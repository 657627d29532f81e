//! What a WeCom event becomes: documents for the built-in mappings ([`CUSTOMERS`],
//! [`EVENTS`]), imported like any connector's.
//!
//! | WeCom event (`Event` / `ChangeType`) | becomes |
//! | --- | --- |
//! | `change_external_contact` / `add_external_contact`, `add_half_external_contact`, `edit_external_contact` | the customer (details fetched with `externalcontact/get`), found or created by identity (`wecom` = external_userid, `wechat` = unionid), and event `wecom.<ChangeType>` |
//! | `change_external_contact` / `del_external_contact`, `del_follow_user`, `transfer_fail` | event `wecom.<ChangeType>` on the customer, when known |
//! | `change_external_chat` / `update` with `add_member`, `del_member` | event `wecom.group_join` / `wecom.group_leave` on each member who is a known customer |
//! | `change_external_chat` / `create`, `dismiss`, other updates | the delivery's outcome only (no customer to record it on) |
//! | anything else | ignored, said in the outcome |
//!
//! Every event is `custom`, on channel `wecom`, at the callback's `CreateTime`, with the
//! staff member (`UserID`), the contact way's `State`, the group (`ChatId`) and the scene in
//! its payload, and `trigger_automations` on: SOPs trigger on it like on any live event.
//! The contact way's `State` (the parameter of a 「联系我」 QR code) is also kept as the
//! customer's attribute `wecomState`, so an SOP can tell which code a customer scanned
//! (`attr.wecomState = "repair-qr"`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::wecom_xml::Message;
use shoal_data::import::{Kind, document, mapping::Mapping};

/// The customers mapping of WeCom contacts.
pub const CUSTOMERS: &str = r#"
kind = "customers"
[columns]
display_name = "/name"
phones = "/phones"
source_channel = "/channel"
[identities]
wecom = "/external_userid"
wechat = "/unionid"
[attributes]
wecomState = "/state"
"#;

/// The events mapping of WeCom events.
pub const EVENTS: &str = r#"
kind = "events"
[customer]
wecom = "/external_userid"
[columns]
type = "/type"
name = "/event"
occurred_at = "/occurred_at"
channel = "/channel"
idempotency_key = "/key"
[payload]
staff = "/staff"
state = "/state"
chatId = "/chat_id"
scene = "/scene"
[options]
trigger_automations = true
"#;

/// The built-in mappings, read once.
pub fn mappings() -> &'static (Mapping, Mapping) {
    static READ: LazyLock<(Mapping, Mapping)> = LazyLock::new(|| {
        (
            document::parse(CUSTOMERS, Kind::Customers)
                .expect("the built-in WeCom customers mapping reads"),
            document::parse(EVENTS, Kind::Events).expect("the built-in WeCom events mapping reads"),
        )
    });
    &READ
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A contact's event; `fetch`: its details are read first (the customer is found or
    /// created from them).
    Contact {
        external_userid: String,
        change: String,
        fetch: bool,
    },
    /// Customers joined or left a group.
    Members {
        chat_id: String,
        joined: bool,
        members: Vec<String>,
    },
    /// Nothing to import; the outcome says what it was.
    Note(String),
}

/// Reads what a message asks for.
pub fn plan(m: &Message) -> Plan {
    let change = m.get("ChangeType");
    match (m.get("Event"), change) {
        (
            "change_external_contact",
            "add_external_contact"
            | "add_half_external_contact"
            | "edit_external_contact"
            | "del_external_contact"
            | "del_follow_user"
            | "transfer_fail",
        ) => {
            let external_userid = m.get("ExternalUserID").to_owned();
            if external_userid.is_empty() {
                return Plan::Note(format!("{change} without ExternalUserID: ignored"));
            }
            Plan::Contact {
                external_userid,
                change: change.to_owned(),
                fetch: matches!(
                    change,
                    "add_external_contact" | "add_half_external_contact" | "edit_external_contact"
                ),
            }
        }
        ("change_external_chat", "update")
            if matches!(m.get("UpdateDetail"), "add_member" | "del_member") =>
        {
            Plan::Members {
                chat_id: m.get("ChatId").to_owned(),
                joined: m.get("UpdateDetail") == "add_member",
                members: m
                    .lists
                    .get("MemChangeList")
                    .cloned()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|u| !u.is_empty())
                    .collect(),
            }
        }
        ("change_external_chat", what) => Plan::Note(format!(
            "customer group {} {what}{}",
            m.get("ChatId"),
            match m.get("UpdateDetail") {
                "" => String::new(),
                d => format!(" ({d})"),
            }
        )),
        (event, change) => Plan::Note(format!("ignored: {event} {change}")),
    }
}

/// When the message was made (`CreateTime`), else `fallback`.
pub fn occurred_at(m: &Message, fallback: DateTime<Utc>) -> DateTime<Utc> {
    m.get("CreateTime")
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(fallback)
}

/// The customer document of a contact, from `externalcontact/get`'s answer (`None`: not
/// fetched, the callback's id only).
pub fn contact_document(external_userid: &str, details: Option<&Value>) -> Value {
    let contact = details.map(|d| &d["external_contact"]);
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").trim().to_owned();
    let mut name = text(contact.map(|c| &c["name"]));
    if name.is_empty() {
        name = format!("企业微信客户 {external_userid}");
    }
    // the phone numbers staff noted for the customer (WeCom shows no customer's own number)
    let mut phones: Vec<String> = Vec::new();
    for follow in details
        .and_then(|d| d["follow_user"].as_array())
        .into_iter()
        .flatten()
    {
        for p in follow["remark_mobiles"].as_array().into_iter().flatten() {
            if let Some(p) = p.as_str().map(str::trim).filter(|p| !p.is_empty())
                && !phones.iter().any(|q| q == p)
            {
                phones.push(p.to_owned());
            }
        }
    }
    json!({
        "external_userid": external_userid,
        "unionid": text(contact.map(|c| &c["unionid"])),
        "name": name,
        "phones": phones,
        "channel": "wecom",
    })
}

/// One document for both mappings: the event's fields beside the contact's.
pub fn contact_with_event(mut contact: Value, event: Value) -> Value {
    if let (Some(doc), Value::Object(fields)) = (contact.as_object_mut(), event) {
        for (k, v) in fields {
            doc.entry(k).or_insert(v);
        }
    }
    contact
}

/// The event document of a contact's change (or of a group member's).
pub fn event_document(
    m: &Message,
    external_userid: &str,
    event: &str,
    key: &str,
    at: DateTime<Utc>,
) -> Value {
    json!({
        "external_userid": external_userid,
        "type": "custom",
        "event": format!("wecom.{event}"),
        "occurred_at": at.to_rfc3339(),
        "channel": "wecom",
        "key": key,
        "staff": m.get("UserID"),
        "state": m.get("State"),
        "chat_id": m.get("ChatId"),
        "scene": match (m.get("JoinScene"), m.get("QuitScene")) {
            ("", q) => q,
            (j, _) => j,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wecom_xml::parse;

    #[test]
    fn the_built_in_mappings_read() {
        let (c, e) = mappings();
        assert_eq!(c.kind, Kind::Customers);
        assert!(e.trigger_automations);
    }

    #[test]
    fn contact_events_plan_a_fetch_only_when_the_contact_is_there() {
        let msg = |change: &str| {
            parse(format!("<xml><Event>change_external_contact</Event><ChangeType>{change}</ChangeType><ExternalUserID>wmX</ExternalUserID></xml>").as_bytes()).unwrap()
        };
        for (change, fetch) in [
            ("add_external_contact", true),
            ("edit_external_contact", true),
            ("del_external_contact", false),
            ("del_follow_user", false),
        ] {
            assert_eq!(
                plan(&msg(change)),
                Plan::Contact {
                    external_userid: "wmX".into(),
                    change: change.into(),
                    fetch
                }
            );
        }
        assert!(matches!(plan(&msg("msg_audit_approved")), Plan::Note(n) if n.contains("ignored")));
    }

    #[test]
    fn a_contact_document_takes_the_name_unionid_and_noted_phones() {
        // the shape WeCom documents for externalcontact/get
        let details = serde_json::json!({
            "errcode": 0,
            "external_contact": { "external_userid": "wmX", "name": "李四", "unionid": "ozU", "type": 1 },
            "follow_user": [
                { "userid": "rocky", "remark_mobiles": ["13800000001", "13000000002"] },
                { "userid": "tom", "remark_mobiles": ["13800000001"] }
            ]
        });
        let doc = contact_document("wmX", Some(&details));
        assert_eq!(doc["name"], "李四");
        assert_eq!(doc["unionid"], "ozU");
        assert_eq!(
            doc["phones"],
            serde_json::json!(["13800000001", "13000000002"])
        );
        assert_eq!(contact_document("wmY", None)["name"], "企业微信客户 wmY");
    }
}
