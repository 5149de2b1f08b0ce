//! Data a plugin computes once per scheduling attempt (in PreFilter or
//! PreScore) and reads for every node, as upstream's `CycleState`: the
//! pod's requests are summed once, not once per node.

use std::any::Any;
use std::sync::Arc;

/// Per-attempt plugin data, keyed by a name the plugin chooses. Cloning
/// is shallow (preemption and nominated pods try "what if" on a copy);
/// [`CycleState::read_mut`] copies a value on first write.
#[derive(Clone, Default)]
pub struct CycleState {
    /// A handful of entries, read for every node: a short list beats
    /// hashing the key each time.
    data: Vec<(&'static str, Arc<dyn Any + Send + Sync>)>,
    /// Upstream's `SkipFilterPlugins`/`SkipScorePlugins`: plugins whose
    /// PreFilter/PreScore said Skip.
    pub(crate) skip_filter: Vec<&'static str>,
    pub(crate) skip_score: Vec<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value);
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.data.push((key, value)),
        }
    }

    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref())
    }

    pub fn read_mut<T: Any + Send + Sync + Clone>(&mut self, key: &'static str) -> Option<&mut T> {
        let slot = &mut self.data.iter_mut().find(|(k, _)| *k == key)?.1;
        if Arc::get_mut(slot).is_none() {
            let own: T = slot.downcast_ref::<T>()?.clone();
            *slot = Arc::new(own);
        }
        Arc::get_mut(slot)?.downcast_mut()
    }
}
