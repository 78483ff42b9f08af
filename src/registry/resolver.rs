//! The registry side of the lock's [`Resolver`] seam: references the store cannot resolve
//! are resolved on their registry and pulled into the store, so that what the lock pins is
//! there for `cairn build --locked`, which never uses the network.

use crate::lock::{ResolveError, ResolvedRef, Resolver};
use crate::reference::ImageRef;
use crate::store::{Store, StoreError};

use super::{Options, Progress};

/// Resolves in the store first; a reference the store does not have is pulled from its
/// registry (tag → digest, index → platform manifest, blobs verified) and then resolved in
/// the store, recording the repository it came from.
pub struct StoreThenRegistry<'a> {
    pub store: &'a Store,
    pub options: &'a Options,
    pub progress: &'a Progress,
}

impl Resolver for StoreThenRegistry<'_> {
    fn resolve_ref(
        &self,
        image: &ImageRef,
        platform: (&str, &str),
    ) -> Result<ResolvedRef, ResolveError> {
        let missing = match self.store.resolve_ref(image, platform) {
            Err(ResolveError::Store(e @ StoreError::NotFound { .. })) => e,
            other => return other,
        };
        let platform_name = format!("{}/{}", platform.0, platform.1);
        super::pull(self.store, image, None, &platform_name, self.options, self.progress).map_err(
            |e| ResolveError::Nowhere { store: Box::new(missing), registry: Box::new(e) },
        )?;
        let mut resolved = self.store.resolve_ref(image, platform)?;
        resolved.repository = Some(image.name());
        Ok(resolved)
    }
}
