//! What every command needs before it can act: the configuration loaded, the engine built on the
//! journal (or `--journal`'s), and the mapping of an engine error to the exit code it deserves
//! (3 whenever the outcome may be unknown, so a cashier never charges twice). It must not print
//! or take a command's decisions; one mapping for all commands keeps the exit codes consistent.

use anyhow::anyhow;

use payterm::config::Config;
use payterm::engine::{Engine, EngineError, Gateways, Settings};
use payterm::journal::Journal;

use crate::cli::Cli;
use crate::output::Fail;

pub(crate) fn load(cli: &Cli) -> Result<Config, Fail> {
    Config::load(&cli.config).map_err(|e| Fail(1, e.into()))
}

/// The configured aggregator with its key, for the commands that talk to it directly.
pub(crate) fn aggregator(cfg: &Config) -> Result<payterm::gateway::aggregator::Aggregator, Fail> {
    let a = cfg.file.gateways.aggregator.clone().ok_or_else(|| {
        Fail(
            1,
            anyhow!("no aggregator is configured ([gateways.aggregator])"),
        )
    })?;
    let key = cfg
        .read_secret("aggregator key", &a.key_file)
        .map_err(|e| Fail(1, e.into()))?;
    Ok(payterm::gateway::aggregator::Aggregator::new(a, key))
}

pub(crate) fn engine(cli: &Cli, cfg: &Config) -> Result<Engine, Fail> {
    let path = cli.journal.clone().unwrap_or_else(|| cfg.journal_path());
    let journal = Journal::open(&path).map_err(|e| Fail(1, e.into()))?;
    let gateways = Gateways::from_config(cfg).map_err(|e| Fail(1, e.into()))?;
    let settings = Settings::from_config(cfg).map_err(|e| Fail(1, e.into()))?;
    Ok(Engine::new(journal, gateways, settings))
}

pub(crate) fn engine_err(e: EngineError) -> Fail {
    let code = match &e {
        // After the attempt was journaled, or without an answer: the outcome is unknown.
        e if e.is_uncertain() => 3,
        EngineError::Journal(payterm::journal::JournalError::NotFound(_)) => 1,
        e if e.is_bad_input() => 1,
        EngineError::Journal(payterm::journal::JournalError::Damaged { .. }) => 1,
        _ => 2,
    };
    Fail(code, e.into())
}

/// [`engine_err`] for an error borrowed from a wider one, whose own text is kept.
pub(crate) fn engine_err_ref(e: &EngineError, text: String) -> Fail {
    let code = match e {
        e if e.is_uncertain() => 3,
        EngineError::Journal(payterm::journal::JournalError::NotFound(_)) => 1,
        e if e.is_bad_input() => 1,
        _ => 2,
    };
    Fail(code, anyhow!("{text}"))
}
