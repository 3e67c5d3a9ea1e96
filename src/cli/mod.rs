//! The command line: verbs and output formatting. The only module that prints.
