//! Units run elsewhere (docs/distributed.md): the contract between a
//! dispatcher and a unit on another machine (`spec`, `wire`), the worker's
//! side (`worker`, `credentials`) and the Slurm executor (`slurm`,
//! `sbatch`).

mod credentials;
mod follow;
mod kubernetes;
mod planned;
mod sbatch;
mod slurm;
mod spec;
mod wire;
mod worker;

pub(crate) use kubernetes::{Cluster, jobs as kubernetes_jobs};
pub(crate) use planned::{shell_line, submissions};
pub(crate) use slurm::Slurm;
pub(crate) use worker::run as run_unit;
