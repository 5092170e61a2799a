//! Reading nw run directories for `nw report`.
