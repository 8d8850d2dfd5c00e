//! CPU twin of shaders/mvm_narrow.wgsl: the `mvm` twin itself. Both shaders sum every accumulator
//! over k in increasing order and share their epilogue, so the block shape changes no value.

pub use super::mvm::mvm as mvm_narrow;
