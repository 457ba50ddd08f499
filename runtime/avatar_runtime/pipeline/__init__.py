"""Stage orchestration, captions, encoding and output storage for one job."""
