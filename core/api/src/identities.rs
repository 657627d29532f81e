//! External identities in GraphQL: the accounts of a customer in outside systems, as
//! answers and as inputs (customers, events and filters name customers by them).

use async_graphql::{InputObject, SimpleObject};
use shoal_crm::customers::{Channel, Identity};

/// An account of the customer in an outside system (WeChat unionid, WeCom external_userid,
/// shop buyer id, store member number, …).
#[derive(SimpleObject, InputObject, Debug, Clone)]
#[graphql(input_name = "IdentityInput")]
pub struct ExternalIdentity {
    pub channel: Channel,
    pub external_id: String,
}

impl From<ExternalIdentity> for Identity {
    fn from(i: ExternalIdentity) -> Self {
        Identity {
            channel: i.channel,
            external_id: i.external_id,
        }
    }
}

impl From<Identity> for ExternalIdentity {
    fn from(i: Identity) -> Self {
        ExternalIdentity {
            channel: i.channel,
            external_id: i.external_id,
        }
    }
}
