//! Keeps parallel agents on one repository apart (docs/isolation.md): the
//! commit an apply's isolated instances start from ([`base`]); each
//! instance's git worktree and branch with a commit per iteration
//! ([`worktree`]), named by [`names`]; git run the way an unattended
//! program must ([`git`]); a merge node's steps, from merging one branch
//! to moving its target ([`landing`]); the bubblewrap sandbox a sandboxed
//! agent runs in ([`sandbox`]); and `conductor gc`,
//! which removes what holds no unsaved work and keeps, saying why, all that
//! does ([`gc`]). Nothing here knows of workflows or runs beyond the names
//! it is given.

pub(crate) mod base;
pub(crate) mod gc;
pub(crate) mod git;
pub(crate) mod landing;
pub(crate) mod names;
pub(crate) mod sandbox;
pub(crate) mod worktree;

pub(crate) use base::{Base, Bases};
pub(crate) use worktree::{Pending, Place, WorktreeError, need_merge_message};
