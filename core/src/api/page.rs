//! Relay `PageInfo`, shared by every connection.

use async_graphql::{Context, SimpleObject};

use super::{ErrorExt, limits};
use crate::{
    pagination::{Cursor, Page, PageArgs, Paged},
    tenancy::Actor,
};

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
