//! `kuzet bench`: placeholder replaced below.
#[derive(clap::Args, Clone, Debug)]
pub struct BenchArgs {}
pub async fn run(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
