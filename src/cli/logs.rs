//! `peapod logs`.
use crate::store::Paths;
use anyhow::Result;
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    pub pod: String,
}
pub fn run(_p: &Paths, _a: &LogsArgs) -> Result<i32> {
    Ok(0)
}
