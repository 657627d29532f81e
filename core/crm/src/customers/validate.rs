//! Normalising and checking customer input. Field paths are those of the GraphQL input
//! (`input.phones[1]`), so a client can point at the exact value that was refused.

use serde_json::Value;

use super::{Attributes, Identity};
use crate::tenancy::Tenant;
use shoal_base::error::Problems;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_CONTACTS: usize = 10;
pub const MAX_IDENTITIES: usize = 20;
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;
pub const MAX_ATTRIBUTE_KEYS: usize = 100;
use shoal_base::kinds::attribute_key;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;

/// A trimmed display name of 1–200 characters.
pub fn display_name(problems: &mut Problems, field: &str, raw: &str) -> String {
    let name = raw.trim();
    if name.is_empty() {
        problems.push(field, "must not be empty");
    } else if name.chars().count() > MAX_NAME_CHARS {
        problems.push(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        );
    } else if name.chars().any(char::is_control) {
        problems.push(field, "must not contain control characters");
    }
    name.to_owned()
}

/// The key used for prefix search and sorting by name.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// A phone number in E.164, reading numbers without a country code in the tenant's region.
pub fn phone(raw: &str, region: phonenumber::country::Id) -> Result<String, String> {
    let trimmed = raw.trim();
    let invalid = || {
        format!(
            "`{trimmed}` is not a valid phone number (numbers without +country code are read as {region:?})"
        )
    };
    // A number written with +country code is parsed without a default region: phonenumber
    // 0.3 otherwise strips the region's national prefix (US `1`) from e.g. `+86 138…`.
    let default = if trimmed.starts_with('+') {
        None
    } else {
        Some(region)
    };
    let number = phonenumber::parse(default, trimmed).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number.format().mode(phonenumber::Mode::E164).to_string())
}

/// A lowercase email address with a plausible syntax (`local@domain.tld`).
pub fn email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let invalid = |why: &str| format!("`{}` is not a valid email address: {why}", raw.trim());
    if email.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err(invalid("no `@`"));
    };
    const LOCAL_SPECIALS: &str = ".!#$%&'*+/=?^_`{|}~-";
    if local.is_empty()
        || local.len() > 64
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !local
            .chars()
            .all(|c| c.is_alphanumeric() || LOCAL_SPECIALS.contains(c))
    {
        return Err(invalid("bad part before `@`"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(invalid("bad domain"));
    }
    if labels.last().is_some_and(|tld| tld.chars().count() < 2) {
        return Err(invalid("bad top-level domain"));
    }
    Ok(email)
}

/// Normalises a list of phones or emails: each checked, duplicates dropped, order kept.
pub fn contacts(
    problems: &mut Problems,
    field: &str,
    raw: &[String],
    check: impl Fn(&str) -> Result<String, String>,
) -> Vec<String> {
    if raw.len() > MAX_CONTACTS {
        problems.push(field, format!("at most {MAX_CONTACTS} entries"));
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for (i, value) in raw.iter().enumerate() {
        match check(value) {
            Ok(v) if !out.contains(&v) => out.push(v),
            Ok(_) => {}
            Err(message) => problems.push(format!("{field}[{i}]"), message),
        }
    }
    out
}

pub fn phones(
    problems: &mut Problems,
    field: &str,
    raw: &[String],
    tenant: &Tenant,
) -> Vec<String> {
    contacts(problems, field, raw, |p| phone(p, tenant.default_region))
}

pub fn emails(problems: &mut Problems, field: &str, raw: &[String]) -> Vec<String> {
    contacts(problems, field, raw, email)
}

/// A JSON object of at most 100 keys and 16 KiB; keys are 1–64 characters without quotes,
/// backslashes or control characters.
pub fn attributes(problems: &mut Problems, field: &str, value: &Value) -> Attributes {
    let Value::Object(map) = value else {
        problems.push(field, "must be a JSON object");
        return Attributes::new();
    };
    if map.len() > MAX_ATTRIBUTE_KEYS {
        problems.push(field, format!("at most {MAX_ATTRIBUTE_KEYS} keys"));
    }
    for key in map.keys() {
        if let Err(message) = attribute_key(key) {
            problems.push(format!("{field}.{key}"), message);
        }
    }
    if value.to_string().len() > MAX_ATTRIBUTES_BYTES {
        problems.push(
            field,
            format!("must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON"),
        );
    }
    map.clone()
}

/// Applies a JSON merge patch to the top-level keys (`null` removes a key).
pub fn merge_attributes(current: &Attributes, patch: &Attributes) -> Attributes {
    let mut merged = current.clone();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    merged
}

pub fn identities(problems: &mut Problems, field: &str, raw: &[Identity]) -> Vec<Identity> {
    if raw.len() > MAX_IDENTITIES {
        problems.push(field, format!("at most {MAX_IDENTITIES} entries"));
        return Vec::new();
    }
    let mut out: Vec<Identity> = Vec::new();
    for (i, identity) in raw.iter().enumerate() {
        let external_id = identity.external_id.trim();
        let at = format!("{field}[{i}].externalId");
        if external_id.is_empty() {
            problems.push(at, "must not be empty");
        } else if external_id.chars().count() > MAX_EXTERNAL_ID_CHARS {
            problems.push(
                at,
                format!("must be at most {MAX_EXTERNAL_ID_CHARS} characters"),
            );
        } else if external_id.chars().any(char::is_control) {
            problems.push(at, "must not contain control characters");
        } else {
            let identity = Identity {
                channel: identity.channel,
                external_id: external_id.to_owned(),
            };
            if !out.contains(&identity) {
                out.push(identity);
            }
        }
    }
    out
}

/// The owner must be a user of the tenant.
pub fn owner(problems: &mut Problems, field: &str, owner: Option<&str>, tenant: &Tenant) {
    if let Some(id) = owner
        && !tenant.users.contains_key(id)
    {
        problems.push(field, format!("no user `{id}` in this tenant"));
    }
}

#[cfg(test)]
mod tests {
    use phonenumber::country::Id;

    use super::*;

    #[test]
    fn phones_are_normalised_to_e164() {
        for (raw, region, expected) in [
            ("138 0013 8000", Id::CN, "+8613800138000"),
            ("+86 138-0013-8000", Id::US, "+8613800138000"),
            ("(415) 555-2671", Id::US, "+14155552671"),
            ("010 6552 9988", Id::CN, "+861065529988"),
        ] {
            assert_eq!(phone(raw, region).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn bad_phones_are_refused() {
        for raw in ["12345", "not a phone", "", "+86 000"] {
            assert!(phone(raw, Id::CN).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn emails_are_lowercased_and_checked() {
        assert_eq!(
            email(" Li.Na@Example.COM ").as_deref(),
            Ok("li.na@example.com")
        );
        assert_eq!(email("张伟@例子.中国").as_deref(), Ok("张伟@例子.中国"));
        for raw in [
            "no-at.example.com",
            "a@b",
            "a..b@example.com",
            "a@-x.com",
            "a b@x.com",
            "@x.com",
        ] {
            assert!(email(raw).is_err(), "{raw} should be refused");
        }
    }

    #[test]
    fn attribute_merge_patch_sets_and_removes() {
        let current = serde_json::json!({"city": "北京", "vip": true})
            .as_object()
            .unwrap()
            .clone();
        let patch = serde_json::json!({"city": "上海", "vip": null, "age": 30})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            Value::Object(merge_attributes(&current, &patch)),
            serde_json::json!({"city": "上海", "age": 30})
        );
    }

    #[test]
    fn attribute_keys_are_checked() {
        let mut problems = Problems::default();
        attributes(
            &mut problems,
            "input.attributes",
            &serde_json::json!({"ok": 1, "bad\"key": 2}),
        );
        let errors = problems.into_errors();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "input.attributes.bad\"key");
    }
}
