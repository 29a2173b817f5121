//! A table whose entries keep their index while they live: the shape both
//! `coarse_timer` (deadlines and wakers) and `drain` (connection wakers)
//! need, since a future holds its index and updates or frees it later.

/// Entries addressed by a stable index; freed indices are reused.
pub struct Slots<T> {
    entries: Vec<Option<T>>,
    free: Vec<usize>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<T> Slots<T> {
    /// Store `value` at `index` if given (an entry this caller holds), else
    /// in a free slot; returns the index.
    pub fn put(&mut self, index: Option<usize>, value: T) -> usize {
        let index = index.or_else(|| self.free.pop()).unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        self.entries[index] = Some(value);
        index
    }

    /// Free `index` for reuse.
    pub fn remove(&mut self, index: usize) {
        self.entries[index] = None;
        self.free.push(index);
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.iter().flatten()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.entries.iter_mut().flatten()
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots allocated, used or free.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Slots;

    #[test]
    fn freed_indices_are_reused_and_held_ones_updated_in_place() {
        let mut s = Slots::default();
        let a = s.put(None, 'a');
        let b = s.put(None, 'b');
        assert_eq!(s.put(Some(a), 'A'), a);
        s.remove(b);
        assert_eq!(s.put(None, 'c'), b);
        assert_eq!(s.iter().collect::<String>(), "Ac");
        assert_eq!((s.len(), s.capacity()), (2, 2));
    }
}
