//! Sources: where input lines come from. `file` follows files as they grow (for `run`)
//! or reads them once (for `replay`); `fswatch` turns filesystem changes into events.
