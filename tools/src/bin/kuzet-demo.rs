//! `kuzet-demo`: kuzet with its own broker and a simulated city around it.

use clap::Parser as _;
use kuzet_tools::demo::{self, DemoArgs};

fn main() -> anyhow::Result<()> {
    let args = DemoArgs::parse();
    actix::System::new().block_on(demo::run(args))
}
