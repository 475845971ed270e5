//! `cargo xtask`: the project's developer chores (being written).

fn main() -> anyhow::Result<()> {
    anyhow::bail!("cargo xtask: no task yet")
}
