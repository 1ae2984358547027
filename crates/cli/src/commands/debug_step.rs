//! `rbk debug step [DIGEST [CMD…]]`: a shell in a kept failed build step
//! (see `crate::failed_step`), or the list of kept steps.

use std::io::Write;
use std::process::ExitCode;

use crate::args::DebugStepArgs;
use crate::runtime::open_containers;
use crate::settings::GlobalSettings;

pub(crate) fn run(settings: &GlobalSettings, args: DebugStepArgs) -> anyhow::Result<ExitCode> {
    let store = open_containers(settings)?;
    rbk_exec::recover_store(&store)?;
    // What earlier commands left in the trash goes in the background.
    crate::trash::empty(&store, std::time::Duration::ZERO)?;
    let Some(digest) = args.digest else {
        return list(&store);
    };
    let runtime = settings.runtime.clone();
    let code = crate::failed_step::open_shell(&store, runtime, &digest, &args.command)?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}

fn list(store: &rbk_store::Store) -> anyhow::Result<ExitCode> {
    let mut rows = vec![vec![
        "STEP".to_string(),
        "FAILED".to_string(),
        "EXIT CODE".to_string(),
        "COMMAND".to_string(),
    ]];
    for step in store.failed_steps()? {
        rows.push(vec![
            step.digest.to_string(),
            step.created.clone(),
            step.code.to_string(),
            step.args.join(" "),
        ]);
    }
    let mut out = std::io::stdout().lock();
    crate::table::write_table(&mut out, &rows)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
