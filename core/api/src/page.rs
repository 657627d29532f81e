//! Relay `PageInfo`, shared by every connection.

use async_graphql::{Context, SimpleObject};

use super::{ErrorExt, limits};
use shoal_base::pagination::{Cursor, Page, PageArgs, Paged};
use shoal_crm::tenancy::Actor;

/// Validates Relay arguments against the configured page size, for an ordering.
pub fn page(
    ctx: &Context<'_>,
    actor: &Actor,
    args: PageArgs,
    order: &str,
) -> async_graphql::Result<Page> {
    Page::new(&args, limits(ctx).max_page_size, actor.tenant_id(), order).gql()
}

#[derive(SimpleObject, Debug, Clone)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    pub fn of<T>(paged: &Paged<(T, Cursor)>) -> PageInfo {
        PageInfo {
            has_next_page: paged.has_next,
            has_previous_page: paged.has_previous,
            start_cursor: paged.items.first().map(|(_, c)| c.encode()),
            end_cursor: paged.items.last().map(|(_, c)| c.encode()),
        }
    }
}

/// Defines a Relay connection and its edge for a node type built `From` a domain item.
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty, $item:ty) => {
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::page::PageInfo,
        }

        impl $conn {
            pub fn from_paged(
                paged: shoal_base::pagination::Paged<($item, shoal_base::pagination::Cursor)>,
            ) -> Self {
                let page_info = $crate::page::PageInfo::of(&paged);
                $conn {
                    edges: paged
                        .items
                        .into_iter()
                        .map(|(n, c)| $edge {
                            cursor: c.encode(),
                            node: n.into(),
                        })
                        .collect(),
                    page_info,
                }
            }
        }
    };
}
pub(crate) use connection;
