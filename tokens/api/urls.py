from django.urls import path

from tokens.api import views

urlpatterns = [
    path("revenue/", views.RevenueView.as_view(), name="tokens-revenue"),
    path("settings/", views.SettingsView.as_view(), name="tokens-settings"),
    path("buy-orders/", views.HistoryView.as_view(), name="tokens-buy-orders"),
    path("buy-orders/execute/", views.ExecuteView.as_view(), name="tokens-buy-order-execute"),
    path("buy-orders/preview/", views.PreviewView.as_view(), name="tokens-buy-order-preview"),
    path("metrics/", views.MetricsView.as_view(), name="tokens-metrics"),
    path("available-revenue/", views.AvailableRevenueView.as_view(), name="tokens-available-revenue"),
]
