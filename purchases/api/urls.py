from django.urls import path

from purchases.api import views

urlpatterns = [
    path("projects/", views.ProjectListView.as_view(), name="projects"),
    path("purchases/", views.PurchaseListCreateView.as_view(), name="purchases"),
    path("purchases/<int:pk>/", views.PurchaseDetailView.as_view(), name="purchase-detail"),
    path("purchases/<int:pk>/refund/", views.PurchaseRefundView.as_view(), name="purchase-refund"),
]
