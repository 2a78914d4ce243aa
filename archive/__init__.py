"""The build archive, in one place: finished builds move from Redis to Parquet files in the
primary store (`files`: the archiver and the reader), leaving a pointer per build in Redis
(`pointers`)."""
