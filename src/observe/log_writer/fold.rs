//! A run of lines that differ only in time and ID, folded as they are
//! queued: the first line in full, then one line naming the rest.
//!
//! Folding happens at the push ([`super::LineBatch::push_or_fold`]), not
//! on the way out: a repeat is never formatted, and the writer never
//! scans a batch for lines to compare. A repeat costs a comparison of its
//! key and an ID appended.
//!
//! A run ends at a line with another key, at any other line, at
//! [`MAX_FOLDED`] repeats, and when its batch is written: runs never
//! span batches, so a folded line is at most a batch's interval (10 to
//! 100 ms) from the full line it names.

use std::time::Duration;

/// The most repeats one folded line names.
pub const MAX_FOLDED: usize = 64;

/// Writes a run's folded line (a whole line, with its newline) into the
/// batch when the run ends with repeats. What the line says is the
/// stream's own (see `deny_log::fold_line`).
pub type FoldLine = fn(&Run, &mut Vec<u8>);

/// The run being folded in a batch (at most one, the last lines queued).
#[derive(Default)]
pub struct Run {
    /// The last line queued started this run, or repeated it.
    open: bool,
    /// What the run's lines have in common, as its first line gave it.
    key: Vec<u8>,
    first_id: Vec<u8>,
    /// The repeats' IDs, space-separated.
    ids: Vec<u8>,
    repeats: usize,
    /// The time of the last repeat.
    last_at: Duration,
}

impl Run {
    /// The key its lines share.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The ID of the line written in full.
    pub fn first_id(&self) -> &[u8] {
        &self.first_id
    }

    /// The repeats' IDs, space-separated, in the order they came.
    pub fn ids(&self) -> &[u8] {
        &self.ids
    }

    pub fn repeats(&self) -> usize {
        self.repeats
    }

    /// When the last repeat was queued (its own clock reading).
    pub fn last_at(&self) -> Duration {
        self.last_at
    }

    /// Whether a line with `key` would be a repeat of this run.
    pub(super) fn takes(&self, key: &[u8]) -> bool {
        self.open && self.repeats < MAX_FOLDED && self.key == key
    }

    /// Bytes the run holds that are not yet lines.
    pub(super) fn held(&self) -> usize {
        self.ids.len()
    }

    /// A new run, whose first line (ID `id`) was queued in full.
    pub(super) fn start(&mut self, key: &[u8], id: &[u8]) {
        self.open = true;
        self.key.clear();
        self.key.extend_from_slice(key);
        self.first_id.clear();
        self.first_id.extend_from_slice(id);
        self.ids.clear();
        self.repeats = 0;
    }

    pub(super) fn add(&mut self, id: &[u8], at: Duration) {
        if self.repeats > 0 {
            self.ids.push(b' ');
        }
        self.ids.extend_from_slice(id);
        self.repeats += 1;
        self.last_at = at;
    }

    /// End the run: its folded line into `lines` if it had repeats.
    pub(super) fn finish(&mut self, fold: Option<FoldLine>, lines: &mut Vec<u8>) {
        if self.open && self.repeats > 0 {
            if let Some(fold) = fold {
                fold(self, lines);
            }
        }
        self.open = false;
        self.repeats = 0;
        self.ids.clear();
    }
}
