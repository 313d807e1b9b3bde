"""Clinical signal analysis: pure numpy/scipy functions, arrays in, findings out, no I/O."""
