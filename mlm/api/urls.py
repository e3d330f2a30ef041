from django.urls import path

from mlm.api import views

urlpatterns = [
    path("preview/", views.StaffPreviewView.as_view(), name="mlm-preview"),
    path("me/preview/", views.MemberPreviewView.as_view(), name="mlm-me-preview"),
    path("me/summary/", views.SummaryView.as_view(), name="mlm-summary"),
    path("me/bonuses/", views.BonusListView.as_view(), name="mlm-bonuses"),
    path("me/team/", views.TeamView.as_view(), name="mlm-team"),
    path("me/notifications/", views.NotificationListView.as_view(), name="mlm-notifications"),
    path("me/notifications/read-all/", views.NotificationReadAllView.as_view(), name="mlm-notifications-read-all"),
    path("me/notifications/<int:id>/read/", views.NotificationReadView.as_view(), name="mlm-notification-read"),
    path("payouts/", views.PayoutRunListView.as_view(), name="mlm-payouts"),
    path("payouts/preview/", views.PayoutPreviewView.as_view(), name="mlm-payout-preview"),
    path("payouts/run/", views.PayoutRunView.as_view(), name="mlm-payout-run"),
]
