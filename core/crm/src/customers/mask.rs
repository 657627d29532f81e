//! A profile as the caller may see it: hidden fields emptied, masked ones starred (the rules
//! are the caller's [`Access`]; the masking of single values is in `access::mask`).

use shoal_base::kinds::Visibility;

use super::{Customer, Identity};
use crate::access::{Access, mask_email, mask_phone, mask_text, mask_value};

impl Access {
    /// The customer as the caller may see it: hidden fields emptied, masked ones starred.
    pub fn mask_customer(&self, c: &mut Customer) {
        if self.system {
            return;
        }
        match self.visibility("displayName") {
            Visibility::Visible => {}
            Visibility::Masked => c.display_name = mask_text(&c.display_name),
            Visibility::Hidden => c.display_name = "***".into(),
        }
        self.mask_list(&mut c.phones, "phones", mask_phone);
        self.mask_list(&mut c.emails, "emails", mask_email);
        let keys: Vec<String> = c.attributes.keys().cloned().collect();
        for key in keys {
            match self.visibility(&format!("attributes.{key}")) {
                Visibility::Visible => {}
                Visibility::Masked => {
                    if let Some(v) = c.attributes.get_mut(&key) {
                        *v = mask_value(v);
                    }
                }
                Visibility::Hidden => {
                    c.attributes.remove(&key);
                }
            }
        }
    }

    fn mask_list(&self, list: &mut Vec<String>, field: &str, mask: fn(&str) -> String) {
        match self.visibility(field) {
            Visibility::Visible => {}
            Visibility::Masked => *list = list.iter().map(|v| mask(v)).collect(),
            Visibility::Hidden => list.clear(),
        }
    }

    /// External identities as the caller may see them.
    pub fn mask_identities(&self, ids: &mut Vec<Identity>) {
        match self.visibility("identities") {
            Visibility::Visible => {}
            Visibility::Masked => {
                for i in ids.iter_mut() {
                    i.external_id = mask_text(&i.external_id);
                }
            }
            Visibility::Hidden => ids.clear(),
        }
    }
}
