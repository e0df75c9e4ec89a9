//! The free places of a slab — the executor's task slots, the reactor's sources — and giving
//! back the capacity a slab kept from a high-water mark. A gateway's clients each had a task and
//! a source while they connected; once they park (idle, socket handed to the parking lot) both
//! are free, and a slab that kept its capacity held ~170 B per idle client (docs/benchmarks.md,
//! idle memory). Places are cut off the slab's free tail; live places keep their indices, so
//! the tokens and task headers that name them stay valid.
//!
//! Generations come from one counter per slab, never per place: a place cut off and made again
//! does not start over at a generation a stale token or waker still carries.

/// Free places fewer than this are never worth a shrink.
const SHRINK_FROM: usize = 4096;

#[derive(Debug)]
pub struct FreePlaces {
    places: Vec<u32>,
    next_generation: u32,
    /// Free places at which the next shrink is tried: twice what was left after the last one,
    /// so a slab whose tail stays live (a long-lived task made late) is not sorted at every park.
    shrink_at: usize,
}

impl Default for FreePlaces {
    fn default() -> FreePlaces {
        FreePlaces {
            places: Vec::new(),
            next_generation: 1,
            shrink_at: SHRINK_FROM,
        }
    }
}

impl FreePlaces {
    /// A free place to reuse, if any.
    pub fn take(&mut self) -> Option<u32> {
        self.places.pop()
    }

    pub fn put(&mut self, index: u32) {
        self.places.push(index);
    }

    /// A generation for a place being filled: never 0 (a free place's mark), never one a
    /// place of this slab had in the last 2^32 fills.
    pub fn generation(&mut self) -> u32 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1).max(1);
        generation
    }

    /// Whether enough places are free for [`FreePlaces::shrink`] to be worth its sort (O(1)).
    pub fn worth_shrinking(&self) -> bool {
        self.places.len() >= self.shrink_at
    }

    /// Cuts the free places at the end of `slots` off and gives back the capacity beyond what
    /// is left; later fills take the lowest free places first.
    pub fn shrink<T>(&mut self, slots: &mut Vec<T>) {
        self.places.sort_unstable_by(|a, b| b.cmp(a));
        let len = slots.len();
        let cut = self
            .places
            .iter()
            .enumerate()
            .take_while(|&(i, &index)| index as usize + 1 + i == len)
            .count();
        slots.truncate(len - cut);
        slots.shrink_to_fit();
        self.places.drain(..cut);
        self.places.shrink_to_fit();
        self.shrink_at = (2 * self.places.len()).max(SHRINK_FROM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_tail_is_cut_and_live_places_keep_their_indices() {
        let mut free = FreePlaces::default();
        let mut slots: Vec<u32> = (0..10_000).collect();
        // Everything but places 3 and 5000 ends.
        for index in (0..10_000).filter(|&i| i != 3 && i != 5000) {
            free.put(index);
        }
        assert!(free.worth_shrinking());
        free.shrink(&mut slots);
        assert_eq!(slots.len(), 5001);
        assert!(slots.capacity() < 10_000);
        assert_eq!((slots[3], slots[5000]), (3, 5000));
        // The free places left are those below the live tail, lowest taken first.
        assert_eq!(free.take(), Some(0));
        assert_eq!(free.take(), Some(1));
        assert_eq!(free.take(), Some(2));
        assert_eq!(free.take(), Some(4));
        // 4,995 free places left: the next try waits until twice as many are free.
        assert!(!free.worth_shrinking());
    }

    #[test]
    fn generations_never_repeat_for_a_place_made_again_and_are_never_zero() {
        let mut free = FreePlaces::default();
        let first = free.generation();
        let second = free.generation();
        assert_ne!(first, second);
        free.next_generation = u32::MAX;
        assert_eq!(free.generation(), u32::MAX);
        assert_eq!(free.generation(), 1);
    }

    #[test]
    fn a_slab_with_few_free_places_is_left_alone() {
        let mut free = FreePlaces::default();
        for index in 0..100 {
            free.put(index);
        }
        assert!(!free.worth_shrinking());
    }
}
