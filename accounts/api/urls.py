from django.urls import path

from accounts.api import views

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="register"),
    path("auth/token/", views.TokenView.as_view(), name="token"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/ledger/", views.LedgerView.as_view(), name="me-ledger"),
    path("me/transfer/", views.TransferView.as_view(), name="me-transfer"),
    path("me/transfers/", views.MemberTransferView.as_view(), name="me-transfers"),
    path("service/deposits/", views.ServiceDepositView.as_view(), name="service-deposit"),
]
