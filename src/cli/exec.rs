//! `peapod exec` and `peapod inspect`.
use crate::store::Paths;
use anyhow::Result;
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    pub pod: String,
    #[arg(short, long)]
    pub container: Option<String>,
    #[arg(short = 'i', long)]
    pub stdin: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}
pub fn run(_p: &Paths, _a: &ExecArgs) -> Result<i32> {
    Ok(0)
}
pub fn inspect(_p: &Paths, _ns: &str, _pod: &str, _c: Option<&str>) -> Result<i32> {
    Ok(0)
}
