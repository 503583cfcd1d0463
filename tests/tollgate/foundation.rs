use crate::each_backend;
