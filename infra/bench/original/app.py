"""A stand-in for the stack PayOrders replaces, for bench_throughput.sh to load beside ours.

The original service (FastAPI + SQLAlchemy + PostgreSQL, run as `uvicorn src.main:app`, one
worker) cannot be installed from a package registry, so this is its two measured routes
rebuilt the way its README describes them, with the same libraries, and nothing added to
make it faster or slower:

- `POST /pay-orders/`: the SALE create, authorized by the `Authorization` header
  `APIKey=<key>,signature=<hex SHA-512 of key + secret + timestamp>,timestamp=<unix s>`
  (accepted within ±5 minutes); the organization is read by its key, the order inserted
  with status PENDING and committed, and returned.
- `GET /pay-orders/{id}`: authorized by `X-API-KEY`; the order is read by id within the
  key's organization.

Synchronous SQLAlchemy sessions (one per request, FastAPI's `def` routes in its thread
pool) on the engine's default pool, tables created at startup with `create_all`, CORS open
and GZip (≥ 1 KiB) as the README lists. PostgreSQL keeps its durable defaults (fsync,
synchronous_commit on). bench_throughput.sh runs uvicorn with its access log off, as the
local host keeps none.

    DATABASE_URL=postgresql+psycopg2://… uvicorn app:app --port N   (from this directory)
    python3 app.py seed KEY SECRET      creates the tables and one organization
"""

import datetime as dt
import decimal
import hashlib
import hmac
import os
import sys
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any, Optional

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from pydantic import BaseModel, Field
from sqlalchemy import JSON, DateTime, ForeignKey, Numeric, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

engine = create_engine(os.environ["DATABASE_URL"])
SessionLocal = sessionmaker(bind=engine, autoflush=False, expire_on_commit=True)


class Base(DeclarativeBase):
    pass


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Organization(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    name: Mapped[str] = mapped_column(String(200))
    api_key: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    api_secret: Mapped[str] = mapped_column(String(128))
    settlement_currencies: Mapped[Any] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)


class PayOrder(Base):
    __tablename__ = "pay_orders"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(32), index=True)
    fiat_unit: Mapped[Optional[str]] = mapped_column(String(8))
    amount: Mapped[decimal.Decimal] = mapped_column(Numeric(36, 18))
    desired_currency: Mapped[Optional[Any]] = mapped_column(JSON)
    metadata_: Mapped[Optional[Any]] = mapped_column("metadata", JSON)
    payment: Mapped[Optional[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=now, onupdate=now)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime(timezone=True))


class PayOrderCreate(BaseModel):
    mode: str
    amount: decimal.Decimal = Field(gt=0)
    fiat_unit: Optional[str] = None
    desired_currency: Optional[dict] = None
    metadata: Optional[dict] = None


class PayOrderOut(BaseModel):
    id: str
    organization_id: str
    mode: str
    status: str
    fiat_unit: Optional[str]
    amount: decimal.Decimal
    desired_currency: Optional[Any]
    metadata: Optional[Any]
    payment: Optional[Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    expires_at: Optional[dt.datetime]


def out(o: PayOrder) -> PayOrderOut:
    return PayOrderOut(
        id=o.id, organization_id=o.organization_id, mode=o.mode, status=o.status,
        fiat_unit=o.fiat_unit, amount=o.amount, desired_currency=o.desired_currency,
        metadata=o.metadata_, payment=o.payment, created_at=o.created_at,
        updated_at=o.updated_at, expires_at=o.expires_at,
    )


def get_db():
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


def org_by_key(db: Session, key: str) -> Organization:
    org = db.scalar(select(Organization).where(Organization.api_key == key))
    if org is None:
        raise HTTPException(status_code=401, detail="Invalid API key")
    return org


def api_key_auth(x_api_key: str = Header(...), db: Session = Depends(get_db)) -> Organization:
    return org_by_key(db, x_api_key)


def signature_auth(authorization: str = Header(...), db: Session = Depends(get_db)) -> Organization:
    try:
        parts = dict(p.split("=", 1) for p in authorization.split(","))
        key, signature, timestamp = parts["APIKey"], parts["signature"], int(parts["timestamp"])
    except (KeyError, ValueError):
        raise HTTPException(status_code=401, detail="Malformed Authorization header")
    if abs(time.time() - timestamp) > 300:
        raise HTTPException(status_code=401, detail="Timestamp outside the allowed window")
    org = org_by_key(db, key)
    expected = hashlib.sha512(f"{key}{org.api_secret}{timestamp}".encode()).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise HTTPException(status_code=401, detail="Invalid signature")
    return org


@asynccontextmanager
async def lifespan(_app: FastAPI):
    Base.metadata.create_all(engine)
    yield


app = FastAPI(title="pay orders (stand-in)", lifespan=lifespan)
app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
app.add_middleware(GZipMiddleware, minimum_size=1024)


@app.post("/pay-orders/", response_model=PayOrderOut)
def create_pay_order(
    body: PayOrderCreate,
    org: Organization = Depends(signature_auth),
    db: Session = Depends(get_db),
) -> PayOrderOut:
    if body.mode not in ("SALE", "DEPOSIT"):
        raise HTTPException(status_code=400, detail="Unknown mode")
    desired = body.desired_currency
    if body.mode == "SALE" and desired is None:
        desired = {"settlement_currencies": org.settlement_currencies}
    order = PayOrder(
        organization_id=org.id, mode=body.mode, status="PENDING", fiat_unit=body.fiat_unit,
        amount=body.amount, desired_currency=desired, metadata_=body.metadata,
        expires_at=now() + dt.timedelta(minutes=30),
    )
    db.add(order)
    db.commit()
    db.refresh(order)
    return out(order)


@app.get("/pay-orders/{payorder_id}", response_model=PayOrderOut)
def get_pay_order(
    payorder_id: str,
    org: Organization = Depends(api_key_auth),
    db: Session = Depends(get_db),
) -> PayOrderOut:
    order = db.scalar(
        select(PayOrder).where(PayOrder.id == payorder_id, PayOrder.organization_id == org.id)
    )
    if order is None:
        raise HTTPException(status_code=404, detail="Pay order not found")
    return out(order)


if __name__ == "__main__" and sys.argv[1:2] == ["seed"]:
    key, secret = sys.argv[2], sys.argv[3]
    Base.metadata.create_all(engine)
    with SessionLocal() as db:
        db.add(Organization(name="bench", api_key=key, api_secret=secret,
                            settlement_currencies=[{"chain_id": 1, "symbol": "USDC"}]))
        db.commit()
