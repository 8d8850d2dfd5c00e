//! Workloads: what a trial computes.
