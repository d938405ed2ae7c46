//! KDL 2.0 to the spanned tree, by the mapping rules in
//! docs/workflow-format.md: the walk and its errors ([`lower`]), and what
//! each key becomes where it is written ([`shape`]).

mod lower;
mod shape;

pub(crate) use lower::parse;
