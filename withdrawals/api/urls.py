from django.urls import path

from withdrawals.api import views

urlpatterns = [
    path("me/withdrawals/", views.MyWithdrawalListCreateView.as_view(), name="me-withdrawals"),
    path("me/withdrawals/<int:id>/", views.MyWithdrawalDetailView.as_view(), name="me-withdrawal-detail"),
    path("me/withdrawals/<int:id>/cancel/", views.MyWithdrawalCancelView.as_view(), name="me-withdrawal-cancel"),
    path("withdrawals/", views.StaffWithdrawalListView.as_view(), name="withdrawals"),
    path("withdrawals/<int:id>/approve/", views.StaffApproveView.as_view(), name="withdrawal-approve"),
    path("withdrawals/<int:id>/reject/", views.StaffRejectView.as_view(), name="withdrawal-reject"),
    path("withdrawals/<int:id>/mark-paid/", views.StaffMarkPaidView.as_view(), name="withdrawal-mark-paid"),
]
