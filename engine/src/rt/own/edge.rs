//! What a reactor reports of a descriptor: one readiness edge. Both reactors make them; the
//! executor's source table ([`super::reactor::Sources`]) takes them.

/// What an edge said of a descriptor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
}
