"""newsroom: a small FastAPI service with the hangs hangdoctor finds, and their fixes."""
