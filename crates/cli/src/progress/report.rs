//! After the build: its record written next to its logs, the reasons of
//! `--explain` (printed, in `rawjson`, and in the record) and the
//! `--timeline` picture.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rbk_graph::Dag;

use super::inputs::{changed_lists, fingerprints, write_file_lists, Sources};
use super::record::{self, Record, Step};
use super::{emit, rawjson, timeline, write_err, Mode, Progress};

/// What the record needs that the views did not see.
pub(crate) struct BuildFacts<'a> {
    pub(crate) dag: &'a Dag,
    pub(crate) sources: Sources<'a>,
    /// `<root>/logs`.
    pub(crate) logs_root: PathBuf,
    pub(crate) id: String,
    pub(crate) dockerfile: String,
    pub(crate) dockerfile_path: String,
    pub(crate) target: Option<String>,
    pub(crate) build_args: BTreeMap<String, String>,
    pub(crate) error: Option<String>,
    pub(crate) image: Option<String>,
    pub(crate) tags: Vec<String>,
    pub(crate) explain: bool,
    pub(crate) timeline: Option<PathBuf>,
}

impl Progress {
    /// Writes the build's record (comparing it with the previous build of
    /// the same Dockerfile and target), prints `--explain`'s reasons and
    /// writes `--timeline`.
    pub(crate) fn record(&self, facts: BuildFacts<'_>) -> anyhow::Result<()> {
        let prints = fingerprints(facts.dag, &facts.sources);
        let previous = record::previous(
            &facts.logs_root,
            &facts.dockerfile_path,
            facts.target.as_deref(),
        );
        let dir = facts.logs_root.join(&facts.id);
        let previous_dir = previous.as_ref().map(|p| facts.logs_root.join(&p.id));
        // A monorepo COPY's list has 100,000 entries: the earlier build's
        // lists are parsed on a second thread while this build's are
        // written, and neither is read back to be compared.
        let (written, earlier) = std::thread::scope(|s| {
            let earlier = s.spawn(|| match (&previous, &previous_dir) {
                (Some(previous), Some(previous_dir)) => {
                    changed_lists(previous, previous_dir, &prints)
                }
                _ => HashMap::new(),
            });
            let written = write_file_lists(
                facts.dag,
                &facts.sources,
                &prints,
                &dir,
                previous_dir.as_deref(),
            );
            let earlier = earlier
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, earlier)
        });
        let written = written?;
        let mut record = self.assemble(&facts, prints, &dir);
        let file_list = |r: &Record, f: &record::Fingerprint| {
            let known = match r.id == facts.id {
                true => &written,
                false => &earlier,
            };
            if let Some(files) = f.files_ref.as_ref().and_then(|name| known.get(name)) {
                return Some(Arc::clone(files));
            }
            record::file_list(&facts.logs_root.join(&r.id), f).map(Arc::new)
        };
        for (i, reason) in super::explain::reasons(&record, previous.as_ref(), &file_list) {
            record.steps[i].reason = Some(reason);
        }
        record.save(&dir)?;
        // Best effort: without the pointer the next build finds this
        // record by reading them all.
        let _ = record::point_latest(&facts.logs_root, &record);
        if facts.explain || self.settings.mode == Mode::RawJson {
            self.show_reasons(&record);
        }
        if let Some(path) = &facts.timeline {
            timeline::write(&record, path)
                .map_err(|e| anyhow::anyhow!("writing --timeline {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn assemble(
        &self,
        facts: &BuildFacts<'_>,
        prints: Vec<record::Fingerprint>,
        dir: &std::path::Path,
    ) -> Record {
        let trace = self.lock();
        let plan: BTreeMap<_, usize> = self
            .plan
            .iter()
            .enumerate()
            .map(|(i, (d, _, _))| (*d, i))
            .collect();
        let secs = |t: Instant| t.saturating_duration_since(trace.start).as_secs_f64();
        let steps = trace
            .vertices
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let log = format!("{}.log", v.digest.hex());
                Step {
                    number: i + 1,
                    digest: v.digest.to_string(),
                    name: v.name.clone(),
                    inputs: v.inputs.iter().map(ToString::to_string).collect(),
                    start: v.started.map(secs),
                    end: v.completed.map(secs),
                    cached: v.cached,
                    error: v.error.clone(),
                    canceled: v.canceled,
                    log: dir.join(&log).exists().then_some(log),
                    reason: None,
                    inputs_of: plan.get(&v.digest).and_then(|p| prints.get(*p).cloned()),
                }
            })
            .collect();
        let elapsed = trace.start.elapsed();
        Record {
            id: facts.id.clone(),
            started: rbk_store::image::format_rfc3339(
                SystemTime::now()
                    .checked_sub(elapsed)
                    .unwrap_or(trace.start_wall),
            ),
            duration: elapsed.as_secs_f64(),
            dockerfile: facts.dockerfile.clone(),
            dockerfile_path: facts.dockerfile_path.clone(),
            target: facts.target.clone(),
            build_args: facts.build_args.clone(),
            result: match facts.error {
                Some(_) => "failed".to_string(),
                None => "ok".to_string(),
            },
            error: facts.error.clone(),
            image: facts.image.clone(),
            tags: facts.tags.clone(),
            steps,
        }
    }

    /// `plain` and `tty`: one line per step that missed the cache;
    /// `rawjson`: the vertices again with `cacheMiss`.
    fn show_reasons(&self, record: &Record) {
        let missed: Vec<&Step> = record.steps.iter().filter(|s| s.reason.is_some()).collect();
        match self.settings.mode {
            Mode::Plain | Mode::Tty => {
                let mut out = String::from("\nWhy steps missed the cache (--explain):\n");
                if missed.is_empty() {
                    out.push_str(" every step came from the cache\n");
                }
                for s in &missed {
                    let reason = s.reason.as_deref().unwrap_or_default();
                    out.push_str(&format!(" => #{} {}\n    {reason}\n", s.number, s.name));
                }
                write_err(&out);
            }
            Mode::RawJson => {
                let trace = self.lock();
                let vertexes = missed
                    .iter()
                    .filter_map(|s| {
                        let v = trace.vertices.get(s.number.checked_sub(1)?)?;
                        let mut vertex = rawjson::vertex(&trace, v);
                        vertex.cache_miss = s.reason.clone();
                        Some(vertex)
                    })
                    .collect();
                emit(&rawjson::SolveStatus {
                    vertexes,
                    ..Default::default()
                });
            }
            Mode::Quiet => {}
        }
    }
}
