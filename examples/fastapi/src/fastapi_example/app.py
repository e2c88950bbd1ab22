"""The application: FastAPI as it runs anywhere else; unik serves ``app`` with uvicorn.

``POST /orders`` checks its JSON body against a pydantic model, answers at once, and
records the order in a background task that runs after the response is sent;
``GET /orders`` lists what was recorded.
"""

from __future__ import annotations

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, Field

app = FastAPI(title="fastapi-example")
orders: list[dict[str, object]] = []


class Item(BaseModel):
    """An order line: pydantic refuses a body without a name or with a negative quantity (422)."""

    name: str
    price: float = Field(ge=0)
    quantity: int = Field(default=1, ge=1)


@app.get("/")
async def hello() -> dict[str, str]:
    """A JSON greeting."""
    return {"hello": "unik", "server": "uvicorn"}


@app.post("/orders")
async def order(item: Item, background: BackgroundTasks) -> dict[str, object]:
    """Price an order; record it once the response is sent."""
    background.add_task(record, item)
    return {"name": item.name, "total": item.price * item.quantity}


@app.get("/orders")
async def recorded() -> list[dict[str, object]]:
    """The orders recorded by the background task so far."""
    return orders


async def record(item: Item) -> None:
    """The background task (``async``: a unikernel runs one thread, and spt refuses more)."""
    orders.append({"name": item.name, "quantity": item.quantity})
