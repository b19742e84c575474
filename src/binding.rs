// N-API binding: filled in next.
