"""Answers of the /me reads. Card tokens and password hashes are never part of them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PreferencesView(BaseModel):
    genres: list[str]
    languages: list[str]
    subtitles: bool
    subtitle_language: str | None
    autoplay_next_episode: bool
    autoplay_previews: bool
    maturity_limit: str
    updated_at: datetime


class Profile(BaseModel):
    user_id: str
    email: str
    display_name: str
    country: str
    birth_year: int
    role: str = Field(description="`user` or `operator`, as of this session's login.")
    created_at: datetime
    updated_at: datetime
    preferences: PreferencesView | None = Field(description="None until the user sets some.")


class SubscriptionView(BaseModel):
    subscription_id: str
    plan: str
    status: str
    period_start: datetime
    period_end: datetime
    started_at: datetime
    canceled_at: datetime | None
    ends_at: datetime | None
    cancel_reason: str | None


class PaymentView(BaseModel):
    payment_id: str
    subscription_id: str
    amount_cents: int
    currency: str
    card_brand: str
    card_last4: str
    status: str
    failure_reason: str | None
    occurred_at: datetime
    refunded_cents: int | None
    refunded_at: datetime | None


class PaymentsPage(BaseModel):
    items: list[PaymentView] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on "
                                    "the last one.")


class RatingView(BaseModel):
    title_id: str
    stars: int
    review: str | None
    rated_at: datetime


class RatingsPage(BaseModel):
    items: list[RatingView] = Field(description="By title id.")
    next_cursor: str | None


class ContinueWatchingItem(BaseModel):
    title_id: str
    episode_id: str | None
    position_seconds: int
    duration_seconds: int
    viewing_session_id: str
    updated_at: datetime


class ContinueWatching(BaseModel):
    items: list[ContinueWatchingItem] = Field(description="Most recent first.")
