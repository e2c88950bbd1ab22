"""A FastAPI application served by uvicorn on unik's TCP/IP stack."""
