//! The rule language: conditions over a customer's attributes, stage, channel, tags and
//! event history (see docs/rules.md). `parse` checks a rule into a typed tree; `eval` runs it
//! on one customer in memory; `sql` compiles it for every customer at once. Both evaluators
//! give the same answer (tested on generated data, on both backends).

pub mod ast;
pub mod eval;
mod parse;
pub mod sql;

pub use ast::Rule;
pub use parse::{MAX_RULE_CHARS, RuleError, TagLookup, parse};

#[cfg(test)]
mod tests;
